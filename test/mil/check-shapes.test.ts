/** Per-op shape inference: each output is declared with unknown dims, so its resolved shape is the inferred one. */
import { describe, expect, it } from "@effect/vitest"
import { checkBody, errors, shapeIn, typeIn } from "./milText.js"

const unknown = (rank: number) => `[${new Array(rank).fill("?").join(", ")}]`

/** Runs one op (plus consts) whose output `y` is declared `tensor<dtype, [?…]>` of `rank`; returns y's shape. */
const infer = (inputs: string, body: string, rank: number, dtype = "fp16", opset = "ios18") => {
  const text = body.replace("OUT", `tensor<${dtype}, ${unknown(rank)}> y`)
  const r = checkBody(inputs, text, "y", opset)
  expect(errors(r).map((d) => d.message)).toEqual([])
  return shapeIn(r, "y")
}

const convConsts = `
  string pt = const()[name = string("pt"), val = string("valid")]
  tensor<int32, [2]> st = const()[name = string("st"), val = tensor<int32, [2]>([1, 1])]
  tensor<int32, [2]> st2 = const()[name = string("st2"), val = tensor<int32, [2]>([2, 2])]
  tensor<int32, [4]> pd = const()[name = string("pd"), val = tensor<int32, [4]>([0, 0, 0, 0])]
  tensor<int32, [2]> dl = const()[name = string("dl"), val = tensor<int32, [2]>([1, 1])]
  int32 gr = const()[name = string("gr"), val = int32(1)]
`.trim().split("\n").map((l) => l.trim() + ";").join("\n")

describe("elementwise broadcasting", () => {
  it("broadcasts [1,64,1,32] with [64,1,1] to [1,64,1,32]", () => {
    expect(infer("tensor<fp16, [1, 64, 1, 32]> a, tensor<fp16, [64, 1, 1]> b", "OUT = add(x = a, y = b);", 4))
      .toEqual([1, 64, 1, 32])
  })
  it("broadcasts a scalar against a tensor", () => {
    expect(infer("tensor<fp16, [3, 5]> a", `fp16 s = const()[name = string("s"), val = fp16(2.0)];
      OUT = mul(x = a, y = s);`, 2)).toEqual([3, 5])
  })
  it("keeps an unknown dim unknown when the other side is 1", () => {
    expect(infer("tensor<fp16, [1, ?]> a, tensor<fp16, [1, 1]> b", "OUT = sub(x = a, y = b);", 2)).toEqual([1, null])
  })
  it("comparison ops produce bool", () => {
    const r = checkBody("tensor<fp16, [2, 3]> a, tensor<fp16, [3]> b", "tensor<bool, [?, ?]> y = less(x = a, y = b);")
    expect(errors(r)).toEqual([])
    expect(typeIn(r, "y")).toEqual({ kind: "tensor", dtype: "bool", shape: [2, 3] })
  })
  it("select broadcasts cond, a and b", () => {
    expect(infer("tensor<bool, [1, 1, 5]> c, tensor<fp32, [1, 4, 5]> b", `fp32 z = const()[name = string("z"), val = fp32(0.0)];
      OUT = select(a = z, b = b, cond = c);`, 3, "fp32")).toEqual([1, 4, 5])
  })
})

describe("conv and pooling", () => {
  it("valid 3×3 conv: 32 → 30", () => {
    expect(infer("tensor<fp16, [1, 3, 32, 32]> x", `${convConsts}
      tensor<fp16, [8, 3, 3, 3]> W = const()[name = string("W"), val = tensor<fp16, [8, 3, 3, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(dilations = dl, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W, x = x);`, 4))
      .toEqual([1, 8, 30, 30])
  })
  it("custom pad 1/1 with stride 2: floor((32 + 2 − 3)/2) + 1 = 16", () => {
    expect(infer("tensor<fp16, [1, 3, 32, 32]> x", `${convConsts}
      string cu = const()[name = string("cu"), val = string("custom")];
      tensor<int32, [4]> p1 = const()[name = string("p1"), val = tensor<int32, [4]>([1, 1, 1, 1])];
      tensor<fp16, [8, 3, 3, 3]> W = const()[name = string("W"), val = tensor<fp16, [8, 3, 3, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(dilations = dl, groups = gr, pad = p1, pad_type = cu, strides = st2, weight = W, x = x);`, 4))
      .toEqual([1, 8, 16, 16])
  })
  it("same padding with stride 2: ceil(33/2) = 17, pad ignored", () => {
    expect(infer("tensor<fp16, [1, 3, 33, 33]> x", `${convConsts}
      string sm = const()[name = string("sm"), val = string("same")];
      tensor<int32, [4]> p9 = const()[name = string("p9"), val = tensor<int32, [4]>([9, 9, 9, 9])];
      tensor<fp16, [8, 3, 3, 3]> W = const()[name = string("W"), val = tensor<fp16, [8, 3, 3, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(dilations = dl, groups = gr, pad = p9, pad_type = sm, strides = st2, weight = W, x = x);`, 4))
      .toEqual([1, 8, 17, 17])
  })
  it("dilation 2 on a 3×3 kernel: effective 5, 32 → 28", () => {
    expect(infer("tensor<fp16, [1, 3, 32, 32]> x", `${convConsts}
      tensor<int32, [2]> d2 = const()[name = string("d2"), val = tensor<int32, [2]>([2, 2])];
      tensor<fp16, [8, 3, 3, 3]> W = const()[name = string("W"), val = tensor<fp16, [8, 3, 3, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(dilations = d2, groups = gr, pad = pd, pad_type = pt, strides = st, weight = W, x = x);`, 4))
      .toEqual([1, 8, 28, 28])
  })
  it("grouped conv: C_in 8, groups 4, weight [16, 2, 1, 1]", () => {
    expect(infer("tensor<fp16, [1, 8, 10, 10]> x", `${convConsts}
      int32 g4 = const()[name = string("g4"), val = int32(4)];
      tensor<fp16, [16, 2, 1, 1]> W = const()[name = string("W"), val = tensor<fp16, [16, 2, 1, 1]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(dilations = dl, groups = g4, pad = pd, pad_type = pt, strides = st, weight = W, x = x);`, 4))
      .toEqual([1, 16, 10, 10])
  })
  it("1-D conv with stride 160: floor((1000 − 512)/160) + 1 = 4", () => {
    expect(infer("tensor<fp32, [1, 1, 1000]> x", `
      string pt = const()[name = string("pt"), val = string("valid")];
      tensor<int32, [1]> s = const()[name = string("s"), val = tensor<int32, [1]>([160])];
      tensor<fp32, [257, 1, 512]> W = const()[name = string("W"), val = tensor<fp32, [257, 1, 512]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv(pad_type = pt, strides = s, weight = W, x = x);`, 3, "fp32")).toEqual([1, 257, 4])
  })
  it("conv_transpose stride 2: (5 − 1)·2 + 3 = 11, C_out = 2", () => {
    expect(infer("tensor<fp16, [1, 4, 5, 5]> x", `${convConsts}
      tensor<fp16, [4, 2, 3, 3]> W = const()[name = string("W"), val = tensor<fp16, [4, 2, 3, 3]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = conv_transpose(pad_type = pt, strides = st2, weight = W, x = x);`, 4)).toEqual([1, 2, 11, 11])
  })
  it("max_pool 2×2 stride 2: 28 → 14", () => {
    expect(infer("tensor<fp32, [1, 8, 28, 28]> x", `OUT = max_pool(ceil_mode = bool(false), kernel_sizes = tensor<int32, [2]>([2, 2]), pad = tensor<int32, [4]>([0, 0, 0, 0]), pad_type = string("custom"), strides = tensor<int32, [2]>([2, 2]), x = x);`,
      4, "fp32")).toEqual([1, 8, 14, 14])
  })
  it("avg_pool with ceil_mode: 5 with k 2 s 2 gives 3 (2 without)", () => {
    expect(infer("tensor<fp16, [1, 1, 5, 5]> x", `OUT = avg_pool(ceil_mode = bool(true), kernel_sizes = tensor<int32, [2]>([2, 2]), pad_type = string("valid"), strides = tensor<int32, [2]>([2, 2]), x = x);`, 4))
      .toEqual([1, 1, 3, 3])
    expect(infer("tensor<fp16, [1, 1, 5, 5]> x", `OUT = avg_pool(ceil_mode = bool(false), kernel_sizes = tensor<int32, [2]>([2, 2]), pad_type = string("valid"), strides = tensor<int32, [2]>([2, 2]), x = x);`, 4))
      .toEqual([1, 1, 2, 2])
  })
})

describe("matmul and linear", () => {
  it("broadcasts batch dims: [2,1,4,8] × [3,8,5] → [2,3,4,5]", () => {
    expect(infer("tensor<fp16, [2, 1, 4, 8]> a, tensor<fp16, [3, 8, 5]> b",
      "OUT = matmul(transpose_x = bool(false), transpose_y = bool(false), x = a, y = b);", 4)).toEqual([2, 3, 4, 5])
  })
  it("transpose_y: [4,8] × [5,8]ᵀ → [4,5]", () => {
    expect(infer("tensor<fp16, [4, 8]> a, tensor<fp16, [5, 8]> b",
      "OUT = matmul(transpose_x = bool(false), transpose_y = bool(true), x = a, y = b);", 2)).toEqual([4, 5])
  })
  it("transpose_x: [8,4]ᵀ × [8,5] → [4,5]", () => {
    expect(infer("tensor<fp16, [8, 4]> a, tensor<fp16, [8, 5]> b",
      "OUT = matmul(transpose_x = bool(true), transpose_y = bool(false), x = a, y = b);", 2)).toEqual([4, 5])
  })
  it("rank-1 x: [8] × [8,5] → [5]", () => {
    expect(infer("tensor<fp16, [8]> a, tensor<fp16, [8, 5]> b", "OUT = matmul(x = a, y = b);", 1)).toEqual([5])
  })
  it("linear: [2,7,64] with weight [32,64] → [2,7,32]", () => {
    expect(infer("tensor<fp16, [2, 7, 64]> x", `
      tensor<fp16, [32, 64]> W = const()[name = string("W"), val = tensor<fp16, [32, 64]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = linear(weight = W, x = x);`, 3)).toEqual([2, 7, 32])
  })
  it("scaled_dot_product_attention: q [1,4,10,16], v [1,4,12,8] → [1,4,10,8]", () => {
    expect(infer("tensor<fp16, [1, 4, 10, 16]> q, tensor<fp16, [1, 4, 12, 16]> k, tensor<fp16, [1, 4, 12, 8]> v",
      "OUT = scaled_dot_product_attention(key = k, query = q, value = v);", 4)).toEqual([1, 4, 10, 8])
  })
})

describe("reshape, transpose, concat, split, stack", () => {
  it("reshape with -1: [2,3,4] to [4,-1] → [4,6]", () => {
    expect(infer("tensor<fp16, [2, 3, 4]> x", "OUT = reshape(shape = tensor<int32, [2]>([4, -1]), x = x);", 2))
      .toEqual([4, 6])
  })
  it("reshape 0 copies the same-index dim in ios16: [2,3,4] to [0,-1] → [2,12]", () => {
    expect(infer("tensor<fp16, [2, 3, 4]> x", "OUT = reshape(shape = tensor<int32, [2]>([0, -1]), x = x);", 2, "fp16",
      "ios16")).toEqual([2, 12])
  })
  it("reshape 0 is right-aligned from ios17: [2,3,4] to [0,-1] → [3,8]", () => {
    expect(infer("tensor<fp16, [2, 3, 4]> x", "OUT = reshape(shape = tensor<int32, [2]>([0, -1]), x = x);", 2))
      .toEqual([3, 8])
  })
  it("transpose [2,3,4] by [2,0,1] → [4,2,3]", () => {
    expect(infer("tensor<fp16, [2, 3, 4]> x", "OUT = transpose(perm = tensor<int32, [3]>([2, 0, 1]), x = x);", 3))
      .toEqual([4, 2, 3])
  })
  it("concat along axis 1: [1,2,3] + [1,5,3] → [1,7,3]", () => {
    expect(infer("tensor<fp16, [1, 2, 3]> a, tensor<fp16, [1, 5, 3]> b",
      "OUT = concat(axis = int32(1), interleave = bool(false), values = (a, b));", 3)).toEqual([1, 7, 3])
  })
  it("split into 2 pieces along axis 2: [1,512,34] → 2 × [1,512,17]", () => {
    const r = checkBody("tensor<fp16, [1, 512, 34]> x",
      "tensor<fp16, [?, ?, ?]> a, tensor<fp16, [?, ?, ?]> b = split(axis = int32(2), num_splits = int32(2), x = x);",
      "a, b")
    expect(errors(r)).toEqual([])
    expect([shapeIn(r, "a"), shapeIn(r, "b")]).toEqual([[1, 512, 17], [1, 512, 17]])
  })
  it("split by sizes [10, 24]", () => {
    const r = checkBody("tensor<fp16, [1, 512, 34]> x",
      "tensor<fp16, [?, ?, ?]> a, tensor<fp16, [?, ?, ?]> b = split(axis = int32(-1), split_sizes = tensor<int32, [2]>([10, 24]), x = x);",
      "a, b")
    expect(errors(r)).toEqual([])
    expect([shapeIn(r, "a"), shapeIn(r, "b")]).toEqual([[1, 512, 10], [1, 512, 24]])
  })
  it("stack inserts a new axis: two [2,3] at -1 → [2,3,2], at 0 → [2,2,3]", () => {
    expect(infer("tensor<fp16, [2, 3]> a, tensor<fp16, [2, 3]> b", "OUT = stack(axis = int32(-1), values = (a, b));", 3))
      .toEqual([2, 3, 2])
    expect(infer("tensor<fp16, [2, 3]> a, tensor<fp16, [2, 3]> b", "OUT = stack(axis = int32(0), values = (a, b));", 3))
      .toEqual([2, 2, 3])
  })
  it("expand_dims at [0, -1]: [3,4] → [1,3,4,1]", () => {
    expect(infer("tensor<fp16, [3, 4]> x", "OUT = expand_dims(axes = tensor<int32, [2]>([0, -1]), x = x);", 4))
      .toEqual([1, 3, 4, 1])
  })
  it("squeeze without axes drops every 1; with axes only those", () => {
    expect(infer("tensor<fp16, [1, 3, 1, 4]> x", "OUT = squeeze(x = x);", 2)).toEqual([3, 4])
    expect(infer("tensor<fp16, [1, 3, 1, 4]> x", "OUT = squeeze(axes = tensor<int32, [1]>([0]), x = x);", 3))
      .toEqual([3, 1, 4])
  })
  it("tile [1,1,87] by [1,87,1] → [1,87,87]", () => {
    expect(infer("tensor<fp16, [1, 1, 87]> x", "OUT = tile(reps = tensor<int32, [3]>([1, 87, 1]), x = x);", 3))
      .toEqual([1, 87, 87])
  })
  it("reflect pad of the last axis by 256 + 256: 300 → 812", () => {
    expect(infer("tensor<fp32, [1, 1, 300]> x",
      `OUT = pad(mode = string("reflect"), pad = tensor<int32, [6]>([0, 0, 0, 0, 256, 256]), x = x);`, 3, "fp32"))
      .toEqual([1, 1, 812])
  })
  it("depth_to_space with block 4: [1,256,32,32] → [1,16,128,128]", () => {
    expect(infer("tensor<fp16, [1, 256, 32, 32]> x", "OUT = depth_to_space(block_size = int32(4), x = x);", 4))
      .toEqual([1, 16, 128, 128])
  })
})

describe("slices", () => {
  it("slice_by_index with stride 2: [4,10] rows 1..3, every other column → [2,5]", () => {
    expect(infer("tensor<fp16, [4, 10]> x",
      "OUT = slice_by_index(begin = tensor<int32, [2]>([1, 0]), end = tensor<int32, [2]>([3, 10]), stride = tensor<int32, [2]>([1, 2]), x = x);",
      2)).toEqual([2, 5])
  })
  it("squeeze_mask removes the axis", () => {
    expect(infer("tensor<fp16, [4, 10]> x",
      "OUT = slice_by_index(begin = tensor<int32, [2]>([2, 0]), end = tensor<int32, [2]>([3, 10]), squeeze_mask = tensor<bool, [2]>([true, false]), x = x);",
      1)).toEqual([10])
  })
  it("end_mask runs to the end: begin 1025 of 1030 → 5", () => {
    expect(infer("tensor<fp16, [1030]> x",
      "OUT = slice_by_index(begin = tensor<int32, [1]>([1025]), end = tensor<int32, [1]>([1]), end_mask = tensor<bool, [1]>([true]), x = x);",
      1)).toEqual([5])
  })
  it("negative stride: 8 down to 2 by −2 → 3 elements; masks reverse the whole axis", () => {
    expect(infer("tensor<fp16, [10]> x",
      "OUT = slice_by_index(begin = tensor<int32, [1]>([8]), end = tensor<int32, [1]>([2]), stride = tensor<int32, [1]>([-2]), x = x);",
      1)).toEqual([3])
    expect(infer("tensor<fp16, [10]> x",
      "OUT = slice_by_index(begin = tensor<int32, [1]>([0]), end = tensor<int32, [1]>([0]), stride = tensor<int32, [1]>([-1]), begin_mask = tensor<bool, [1]>([true]), end_mask = tensor<bool, [1]>([true]), x = x);",
      1)).toEqual([10])
  })
  it("negative begin counts from the end: −3 of 10 to the end → 3", () => {
    expect(infer("tensor<fp16, [10]> x",
      "OUT = slice_by_index(begin = tensor<int32, [1]>([-3]), end = tensor<int32, [1]>([0]), end_mask = tensor<bool, [1]>([true]), x = x);",
      1)).toEqual([3])
  })
  it("slice_by_size with size −1 runs to the end: 256 from 128 → 128", () => {
    expect(infer("tensor<fp16, [1, 64, 1, 256]> x",
      "OUT = slice_by_size(begin = tensor<int32, [4]>([0, 0, 0, 128]), size = tensor<int32, [4]>([1, 64, 1, -1]), x = x);",
      4)).toEqual([1, 64, 1, 128])
  })
})

describe("reductions, gather, topk, lstm, cast", () => {
  it("reduce_sum keep_dims sets the axis to 1", () => {
    expect(infer("tensor<fp16, [1, 64, 1, 32]> x",
      "OUT = reduce_sum(axes = tensor<int32, [1]>([1]), keep_dims = bool(true), x = x);", 4)).toEqual([1, 1, 1, 32])
  })
  it("reduce_max over every axis without keep_dims gives a scalar", () => {
    const r = checkBody("tensor<fp16, [3, 4]> x", "fp16 y = reduce_max(keep_dims = bool(false), x = x);")
    expect(errors(r)).toEqual([])
    expect(shapeIn(r, "y")).toEqual([])
  })
  it("reduce_argmax drops the axis and yields int32", () => {
    const r = checkBody("tensor<fp16, [1, 1, 1, 1027]> x",
      "tensor<int32, [?, ?, ?]> y = reduce_argmax(axis = int32(-1), keep_dims = bool(false), x = x);")
    expect(errors(r)).toEqual([])
    expect(typeIn(r, "y")).toEqual({ kind: "tensor", dtype: "int32", shape: [1, 1, 1] })
  })
  it("gather along axis 0: [1027,640] with indices [1,1] → [1,1,640]", () => {
    expect(infer("tensor<int32, [1, 1]> i", `
      tensor<fp16, [1027, 640]> E = const()[name = string("E"), val = tensor<fp16, [1027, 640]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      OUT = gather(axis = int32(0), indices = i, x = E);`, 3)).toEqual([1, 1, 640])
  })
  it("gather_along_axis takes the indices' shape", () => {
    expect(infer("tensor<fp16, [1, 1, 1, 1027]> x, tensor<int32, [1, 1, 1, 1]> i",
      "OUT = gather_along_axis(axis = int32(-1), indices = i, x = x);", 4)).toEqual([1, 1, 1, 1])
  })
  it("topk replaces the axis by k and returns values and indices", () => {
    const r = checkBody("tensor<fp16, [1, 1, 1, 1027]> x",
      "tensor<fp16, [?, ?, ?, ?]> v, tensor<int32, [?, ?, ?, ?]> i = topk(axis = int32(-1), k = int32(64), x = x);",
      "v, i")
    expect(errors(r)).toEqual([])
    expect([shapeIn(r, "v"), shapeIn(r, "i")]).toEqual([[1, 1, 1, 64], [1, 1, 1, 64]])
  })
  it("lstm with output_sequence: [5,1,16], H = 32 → [5,1,32], [1,32], [1,32]", () => {
    const r = checkBody("tensor<fp16, [5, 1, 16]> x, tensor<fp16, [1, 32]> h, tensor<fp16, [1, 32]> c", `
      tensor<fp16, [128, 16]> Wi = const()[name = string("Wi"), val = tensor<fp16, [128, 16]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      tensor<fp16, [128, 32]> Wh = const()[name = string("Wh"), val = tensor<fp16, [128, 32]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(4224)))];
      tensor<fp16, [?, ?, ?]> o, tensor<fp16, [?, ?]> ho, tensor<fp16, [?, ?]> co = lstm(initial_c = c, initial_h = h, output_sequence = bool(true), weight_hh = Wh, weight_ih = Wi, x = x);`,
    "o, ho, co")
    expect(errors(r)).toEqual([])
    expect([shapeIn(r, "o"), shapeIn(r, "ho"), shapeIn(r, "co")]).toEqual([[5, 1, 32], [1, 32], [1, 32]])
  })
  it("cast changes the dtype and keeps the shape", () => {
    const r = checkBody("tensor<int32, [3]> x", `tensor<fp16, [?]> y = cast(dtype = string("fp16"), x = x);`)
    expect(errors(r)).toEqual([])
    expect(typeIn(r, "y")).toEqual({ kind: "tensor", dtype: "fp16", shape: [3] })
  })
  it("range_1d of 0..10 step 3 has ceil(10/3) = 4 elements; shape gives the rank", () => {
    expect(infer("tensor<fp16, [2, ?]> x", `
      int32 a = const()[name = string("a"), val = int32(0)];
      int32 b = const()[name = string("b"), val = int32(10)];
      int32 s = const()[name = string("s"), val = int32(3)];
      OUT = range_1d(end = b, start = a, step = s);`, 1, "int32")).toEqual([4])
    expect(infer("tensor<fp16, [2, ?]> x", "OUT = shape(x = x);", 1, "int32")).toEqual([2])
  })
  it("layer_norm and softmax keep x's shape", () => {
    expect(infer("tensor<fp16, [1, 17, 512]> x", `
      tensor<fp16, [512]> g = const()[name = string("g"), val = tensor<fp16, [512]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      tensor<fp16, [?, ?, ?]> n = layer_norm(axes = tensor<int32, [1]>([-1]), epsilon = fp16(0.001), gamma = g, x = x);
      OUT = softmax(axis = int32(-1), x = n);`, 3)).toEqual([1, 17, 512])
  })
  it("constexpr_affine_dequantize (attribute form) gives the scale's dtype and the data's shape", () => {
    const r = checkBody("tensor<fp16, [1, 64, 8, 8]> x",
      "tensor<fp16, [?, ?, ?, ?]> y = constexpr_affine_dequantize()[axis = int32(0), name = string(\"W0\"), quantized_data = tensor<int8, [64, 64, 1, 1]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64))), scale = fp16(0x1p-3), zero_point = int8(0)];")
    expect(errors(r)).toEqual([])
    expect(typeIn(r, "y")).toEqual({ kind: "tensor", dtype: "fp16", shape: [64, 64, 1, 1] })
  })
})

describe("CheckResult", () => {
  const r = checkBody("tensor<fp16, [1, 4, 1, 8]> x", `
    tensor<int32, [2]> p = const()[name = string("p"), val = tensor<int32, [2]>([3, -1])];
    tensor<fp16, [4, 2]> W = const()[name = string("W"), val = tensor<fp16, [4, 2]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(128)))];
    tensor<int32, [2]> one = const()[name = string("one"), val = tensor<int32, [2]>(7)];
    tensor<fp16, [1, 4, 1, 8]> y = relu(x = x);`)
  const fn = r.functions.get("main")!
  it("decodes inline consts row-major, and keeps one-value literals as a splat (never expanded)", () => {
    expect(fn.consts.get("p")).toEqual({ kind: "inline", dtype: "int32", shape: [2], data: [3, -1] })
    expect(fn.consts.get("one")).toEqual({ kind: "splat", dtype: "int32", shape: [2], value: 7 })
  })
  it("keeps BLOBFILE consts as a location", () => {
    expect(fn.consts.get("W")).toEqual({ kind: "blob", dtype: "fp16", shape: [4, 2], path: "@model_path/weights/w.bin",
      offset: 128n })
  })
  it("types inputs, consts and op outputs", () => {
    expect([...fn.types.keys()]).toEqual(["x", "p", "W", "one", "y"])
    expect(fn.types.get("x")).toEqual({ kind: "tensor", dtype: "fp16", shape: [1, 4, 1, 8] })
  })
  it("resolves scalars as rank-0 tensors and states as wrappers", () => {
    const s = checkBody("state<tensor<fp16, [1, 4, 1, 8]>> k, fp16 e",
      "tensor<fp16, [1, 4, 1, 8]> y = read_state(input = k);")
    expect(errors(s)).toEqual([])
    const types = s.functions.get("main")!.types
    expect(types.get("e")).toEqual({ kind: "tensor", dtype: "fp16", shape: [] })
    expect(types.get("k")).toEqual({ kind: "state", inner: { kind: "tensor", dtype: "fp16", shape: [1, 4, 1, 8] } })
  })
})

describe("generator ops", () => {
  it("real_div, exp, tanh, rsqrt and gelu keep the broadcast shape", () => {
    expect(infer("tensor<fp16, [1, 8, 1, 16]> x, tensor<fp16, [1, 1, 1, 16]> d", `
      tensor<fp16, [?, ?, ?, ?]> a = real_div(x = x, y = d);
      tensor<fp16, [?, ?, ?, ?]> b = exp(x = a);
      tensor<fp16, [?, ?, ?, ?]> c = tanh(x = b);
      tensor<fp16, [?, ?, ?, ?]> e = rsqrt(epsilon = fp16(0.001), x = c);
      OUT = gelu(mode = string("TANH_APPROXIMATION"), x = e);`, 4)).toEqual([1, 8, 1, 16])
  })
  it("reduce_mean over axes [1, 3] without keep_dims: [2,8,3,16] → [2,3]", () => {
    expect(infer("tensor<fp16, [2, 8, 3, 16]> x",
      "OUT = reduce_mean(axes = tensor<int32, [2]>([1, -1]), keep_dims = bool(false), x = x);", 2)).toEqual([2, 3])
  })
  it("batch_norm keeps x and checks per-channel parameters", () => {
    const ok = checkBody("tensor<fp16, [1, 8, 4, 4]> x", `
      tensor<fp16, [8]> m = const()[name = string("m"), val = tensor<fp16, [8]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      tensor<fp16, [1, 8, 4, 4]> y = batch_norm(mean = m, variance = m, x = x);`)
    expect(errors(ok)).toEqual([])
    const bad = checkBody("tensor<fp16, [1, 8, 4, 4]> x", `
      tensor<fp16, [4]> m = const()[name = string("m"), val = tensor<fp16, [4]>(BLOBFILE(path = string("@model_path/weights/w.bin"), offset = uint64(64)))];
      tensor<fp16, [1, 8, 4, 4]> y = batch_norm(mean = m, variance = m, x = x);`)
    expect(errors(bad).map((d) => d.message)).toEqual([
      "batch_norm: `mean` expected shape [8] (x's channels), found [4]",
      "batch_norm: `variance` expected shape [8] (x's channels), found [4]"
    ])
  })
  it("coreml_update_state returns the value's type", () => {
    const r = checkBody("state<tensor<fp16, [1, 4, 1, 8]>> k, tensor<fp16, [1, 4, 1, 8]> v",
      "tensor<fp16, [?, ?, ?, ?]> y = coreml_update_state(state = k, value = v);")
    expect(errors(r)).toEqual([])
    expect(shapeIn(r, "y")).toEqual([1, 4, 1, 8])
  })
  it("quantize then dequantize: int8 then the scale's dtype, same shape", () => {
    const r = checkBody("tensor<fp16, [1, 64, 8, 8]> x", `
      tensor<int8, [?, ?, ?, ?]> q = quantize(input = x, output_dtype = string("int8"), scale = fp16(0.125));
      tensor<fp16, [?, ?, ?, ?]> y = dequantize(input = q, scale = fp16(0.125));`)
    expect(errors(r)).toEqual([])
    expect(typeIn(r, "q")).toEqual({ kind: "tensor", dtype: "int8", shape: [1, 64, 8, 8] })
    expect(typeIn(r, "y")).toEqual({ kind: "tensor", dtype: "fp16", shape: [1, 64, 8, 8] })
  })
  it("scaled_dot_product_attention rejects a key of another embedding size", () => {
    const r = checkBody("tensor<fp16, [1, 4, 10, 16]> q, tensor<fp16, [1, 4, 12, 8]> k",
      "tensor<fp16, [1, 4, 10, 8]> y = scaled_dot_product_attention(key = k, query = q, value = k);")
    expect(errors(r).map((d) => d.message)).toEqual([
      "scaled_dot_product_attention: key expected embedding size 16 (query's last dim), found 8"
    ])
  })
})
