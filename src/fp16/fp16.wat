;; fp16 <-> f32 conversion kernels (WebAssembly SIMD), assembled by scripts/wasm.mjs into fp16.wasm.ts. The memory
;; is imported: one instance converts through a shared staging area (the host copies data in and out), and each
;; surface allocated in a memory of its own gets an instance that converts straight into, or out of, its rows.
;; Counts are rounded up to a multiple of 16 by the host, which reserves the slack. The common-case kernels do 16 elements per step (two
;; independent halves the CPU can overlap), the full ones 8. The lane math is written out inline because Node 20's
;; engine does not inline wasm calls, and a call per vector costs more than the math.
;; Each direction has a full kernel and a cheaper one for the common case that hands a run back (early) when it
;; meets a value it does not cover; the exported entry points then redo that run with the full kernel.
;;
;; f32 -> fp16: IEEE round-to-nearest-even, subnormal results kept, |x| >= 65520 -> Inf, NaN -> sign|0x7E00.
;; fp16 -> f32: exact; subnormals normalised, Inf kept, NaN payload kept (shifted left 13).
(module
  (import "env" "memory" (memory 1))

  ;; Full kernel: $n f32 at $src -> $n fp16 at $dst, contiguous; $n a multiple of 8.
  ;; Per 32-bit lane (abs = |x| bits):
  ;;   n = (abs - (112 << 23) + 0xFFF + lsb) >> 13 (arithmetic): the normal-range result, rounded to nearest even on
  ;;       bit 13. Negative below 2^-15, saturates to 0x7FFF above the fp16 range after narrowing.
  ;;   s = bits(abs + 0.5f) - bits(0.5f): adding 0.5 makes the float unit round at 2^-24, fp16's subnormal spacing,
  ;;       so s is the subnormal result (0..0x400) for |x| < 2^-14 and is never below n elsewhere.
  ;; Then, on 16-bit lanes: r = min(max(n, min(s, 0x400)), 0x7C00), NaN adds the quiet bit, and the sign is bit 15
  ;; of x narrowed with signed saturation (negative stays negative).
  (func $f32_to_f16_full (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local $a v128) (local $b v128) (local $absA v128) (local $absB v128)
    (local $kAbs v128) (local $kBias v128) (local $kOne v128) (local $kHalf v128)
    (local $k400 v128) (local $k7C00 v128) (local $k200 v128) (local $k8000 v128)
    (local.set $kAbs (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
    (local.set $kBias (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff)) ;; -(112 << 23) + 0xFFF
    (local.set $kOne (v128.const i32x4 1 1 1 1))
    (local.set $kHalf (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000)) ;; 0.5f
    (local.set $k400 (v128.const i16x8 0x400 0x400 0x400 0x400 0x400 0x400 0x400 0x400))
    (local.set $k7C00 (v128.const i16x8 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00))
    (local.set $k200 (v128.const i16x8 0x200 0x200 0x200 0x200 0x200 0x200 0x200 0x200))
    (local.set $k8000 (v128.const i16x8 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (loop $step
        (local.set $a (v128.load (local.get $src)))
        (local.set $b (v128.load offset=16 (local.get $src)))
        (local.set $absA (v128.and (local.get $a) (local.get $kAbs)))
        (local.set $absB (v128.and (local.get $b) (local.get $kAbs)))
        (v128.store (local.get $dst)
          (v128.or
            (v128.or
              ;; min(max(n, min(s, 0x400)), 0x7C00)
              (i16x8.min_s
                (i16x8.max_s
                  (i16x8.narrow_i32x4_s
                    (i32x4.shr_s
                      (i32x4.add (i32x4.add (local.get $absA) (local.get $kBias))
                        (v128.and (i32x4.shr_u (local.get $absA) (i32.const 13)) (local.get $kOne)))
                      (i32.const 13))
                    (i32x4.shr_s
                      (i32x4.add (i32x4.add (local.get $absB) (local.get $kBias))
                        (v128.and (i32x4.shr_u (local.get $absB) (i32.const 13)) (local.get $kOne)))
                      (i32.const 13)))
                  (i16x8.min_s
                    (i16x8.narrow_i32x4_s
                      (i32x4.sub (f32x4.add (local.get $absA) (local.get $kHalf)) (local.get $kHalf))
                      (i32x4.sub (f32x4.add (local.get $absB) (local.get $kHalf)) (local.get $kHalf)))
                    (local.get $k400)))
                (local.get $k7C00))
              ;; NaN: quiet bit
              (v128.and
                (i16x8.narrow_i32x4_s (f32x4.ne (local.get $a) (local.get $a)) (f32x4.ne (local.get $b) (local.get $b)))
                (local.get $k200)))
            ;; sign: signed saturation keeps it in bit 15
            (v128.and (i16x8.narrow_i32x4_s (local.get $a) (local.get $b)) (local.get $k8000))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br_if $step (i32.lt_u (local.get $src) (local.get $end))))))

  ;; The common case only: |x| < 2^-46 (zero included) or a normal fp16 result. Computes n as above, clamps it at 0
  ;; (those tiny values all round to ±0) and tracks, on 16-bit lanes, whether some lane fell in -31744 <= n < 0x400
  ;; (the subnormal window and the rare tiny values above 2^-46) or above 0x7C00 (|x| >= 65536, Inf, NaN). The first
  ;; test is bit 15 of n - 1024 (wrapping), OR-ed over the run: an add and an OR cost less than a saturating add and
  ;; an unsigned min. Returns 1 when some lane was out; the caller then redoes the run with the full kernel.
  ;; The tie-breaking LSB is subtracted as a compare mask (-1 when bit 13 is set): cheaper here than a shift.
  (func $f32_to_f16_common (param $src i32) (param $dst i32) (param $n i32) (result i32)
    (local $end i32) (local $stop i32)
    (local $a v128) (local $b v128) (local $absA v128) (local $absB v128) (local $n16 v128)
    (local $low v128) (local $high v128)
    (local $kAbs v128) (local $kBias v128) (local $kLsb v128) (local $k8000 v128) (local $kWindow v128)
    (local.set $kAbs (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
    (local.set $kBias (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
    (local.set $kLsb (v128.const i32x4 0x2000 0x2000 0x2000 0x2000))
    (local.set $k8000 (v128.const i16x8 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000 0x8000))
    (local.set $kWindow (v128.const i16x8 -1024 -1024 -1024 -1024 -1024 -1024 -1024 -1024))
    (local.set $low (v128.const i16x8 0 0 0 0 0 0 0 0))
    (local.set $high (local.get $k8000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    ;; Checked every 512 bytes of input, so a run that needs the full kernel is handed back early.
    (block $done
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (loop $chunk
        (local.set $stop (i32.add (local.get $src) (i32.const 512)))
        (if (i32.gt_u (local.get $stop) (local.get $end)) (then (local.set $stop (local.get $end))))
        (loop $step
          (local.set $a (v128.load (local.get $src)))
          (local.set $b (v128.load offset=16 (local.get $src)))
          (local.set $absA (v128.and (local.get $a) (local.get $kAbs)))
          (local.set $absB (v128.and (local.get $b) (local.get $kAbs)))
          (local.set $n16
            (i16x8.narrow_i32x4_s
              (i32x4.shr_s
                (i32x4.sub (i32x4.add (local.get $absA) (local.get $kBias))
                  (i32x4.eq (v128.and (local.get $absA) (local.get $kLsb)) (local.get $kLsb)))
                (i32.const 13))
              (i32x4.shr_s
                (i32x4.sub (i32x4.add (local.get $absB) (local.get $kBias))
                  (i32x4.eq (v128.and (local.get $absB) (local.get $kLsb)) (local.get $kLsb)))
                (i32.const 13))))
          (local.set $low (v128.or (local.get $low) (i16x8.add (local.get $n16) (local.get $kWindow))))
          (local.set $high (i16x8.max_s (local.get $high) (local.get $n16)))
          (v128.store (local.get $dst)
            (v128.or
              (i16x8.max_s (local.get $n16) (v128.const i16x8 0 0 0 0 0 0 0 0))
              (v128.and (i16x8.narrow_i32x4_s (local.get $a) (local.get $b)) (local.get $k8000))))
          (local.set $a (v128.load offset=32 (local.get $src)))
          (local.set $b (v128.load offset=48 (local.get $src)))
          (local.set $absA (v128.and (local.get $a) (local.get $kAbs)))
          (local.set $absB (v128.and (local.get $b) (local.get $kAbs)))
          (local.set $n16
            (i16x8.narrow_i32x4_s
              (i32x4.shr_s
                (i32x4.sub (i32x4.add (local.get $absA) (local.get $kBias))
                  (i32x4.eq (v128.and (local.get $absA) (local.get $kLsb)) (local.get $kLsb)))
                (i32.const 13))
              (i32x4.shr_s
                (i32x4.sub (i32x4.add (local.get $absB) (local.get $kBias))
                  (i32x4.eq (v128.and (local.get $absB) (local.get $kLsb)) (local.get $kLsb)))
                (i32.const 13))))
          (local.set $low (v128.or (local.get $low) (i16x8.add (local.get $n16) (local.get $kWindow))))
          (local.set $high (i16x8.max_s (local.get $high) (local.get $n16)))
          (v128.store offset=16 (local.get $dst)
            (v128.or
              (i16x8.max_s (local.get $n16) (v128.const i16x8 0 0 0 0 0 0 0 0))
              (v128.and (i16x8.narrow_i32x4_s (local.get $a) (local.get $b)) (local.get $k8000))))
          (local.set $src (i32.add (local.get $src) (i32.const 64)))
          (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
          (br_if $step (i32.lt_u (local.get $src) (local.get $stop))))
        (if
          (i32.or
            (v128.any_true (v128.and (local.get $low) (local.get $k8000)))
            (v128.any_true (i16x8.gt_s (local.get $high) (v128.const i16x8 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00 0x7c00))))
          (then (return (i32.const 1))))
        (br_if $chunk (i32.lt_u (local.get $src) (local.get $end)))))
    (i32.const 0))

  ;; $n f32 at $src -> $n fp16 at $dst: the common-case kernel, redone in full only when needed.
  (func $f32_to_f16 (export "f32_to_f16") (param $src i32) (param $dst i32) (param $n i32)
    (if (call $f32_to_f16_common (local.get $src) (local.get $dst) (local.get $n))
      (then (call $f32_to_f16_full (local.get $src) (local.get $dst) (local.get $n)))))

  ;; Full kernel: $n fp16 at $src -> $n f32 at $dst, contiguous; $n a multiple of 8.
  ;; Each half is doubled into a 32-bit lane (interleaving the vector with itself: one instruction), then shifted
  ;; right by 3 with its sign: sign stays in bit 31, exponent and mantissa land in bits 13..27, the rest is masked
  ;; off. That float is exactly 2^112 too small (fp16 subnormals become f32 subnormals); one exact multiply fixes it
  ;; (subnormal operands are slower on x86, which only costs time on runs full of fp16 subnormals).
  ;; Exponent 31 (Inf/NaN) then needs the f32 exponent forced to 255, keeping the payload.
  (func $f16_to_f32_full (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $h v128) (local $inf v128)
    (local $k7FFF v128) (local $k7BFF v128) (local $kKeep v128) (local $kScale v128) (local $kExp v128)
    (local.set $k7FFF (v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $k7BFF (v128.const i16x8 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff))
    (local.set $kKeep (v128.const i32x4 0x8fffe000 0x8fffe000 0x8fffe000 0x8fffe000)) ;; sign + bits 13..27
    (local.set $kScale (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000)) ;; 2^112
    (local.set $kExp (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (loop $step
        (local.set $h (v128.load (local.get $src)))
        (local.set $inf (i16x8.gt_s (v128.and (local.get $h) (local.get $k7FFF)) (local.get $k7BFF)))
        (v128.store (local.get $dst)
          (v128.or
            (f32x4.mul
              (v128.and
                (i32x4.shr_s
                  (i8x16.shuffle 0 1 0 1 2 3 2 3 4 5 4 5 6 7 6 7 (local.get $h) (local.get $h))
                  (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale))
            (v128.and
              (i8x16.shuffle 0 1 0 1 2 3 2 3 4 5 4 5 6 7 6 7 (local.get $inf) (local.get $inf))
              (local.get $kExp))))
        (v128.store offset=16 (local.get $dst)
          (v128.or
            (f32x4.mul
              (v128.and
                (i32x4.shr_s
                  (i8x16.shuffle 8 9 8 9 10 11 10 11 12 13 12 13 14 15 14 15 (local.get $h) (local.get $h))
                  (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale))
            (v128.and
              (i8x16.shuffle 8 9 8 9 10 11 10 11 12 13 12 13 14 15 14 15 (local.get $inf) (local.get $inf))
              (local.get $kExp))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br_if $step (i32.lt_u (local.get $src) (local.get $end))))))

  ;; Common-case kernel: the same without the Inf/NaN fix-up (exact for zeros, subnormals and normals). Tracks the
  ;; largest |h| and returns 1 as soon as some lane had exponent 31; the caller then redoes the run in full.
  (func $f16_to_f32_common (param $src i32) (param $dst i32) (param $n i32) (result i32)
    (local $end i32) (local $stop i32) (local $h v128) (local $max v128)
    (local $k7FFF v128) (local $kKeep v128) (local $kScale v128)
    (local.set $k7FFF (v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $kKeep (v128.const i32x4 0x8fffe000 0x8fffe000 0x8fffe000 0x8fffe000))
    (local.set $kScale (v128.const i32x4 0x77800000 0x77800000 0x77800000 0x77800000))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    ;; Checked every 256 bytes of input, so a run that needs the full kernel is handed back early.
    (block $done
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (loop $chunk
        (local.set $stop (i32.add (local.get $src) (i32.const 256)))
        (if (i32.gt_u (local.get $stop) (local.get $end)) (then (local.set $stop (local.get $end))))
        (loop $step
          (local.set $h (v128.load (local.get $src)))
          (local.set $max (i16x8.max_s (local.get $max) (v128.and (local.get $h) (local.get $k7FFF))))
          (v128.store (local.get $dst)
            (f32x4.mul
              (v128.and
                (i32x4.shr_s (i8x16.shuffle 0 1 0 1 2 3 2 3 4 5 4 5 6 7 6 7 (local.get $h) (local.get $h)) (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale)))
          (v128.store offset=16 (local.get $dst)
            (f32x4.mul
              (v128.and
                (i32x4.shr_s (i8x16.shuffle 8 9 8 9 10 11 10 11 12 13 12 13 14 15 14 15 (local.get $h) (local.get $h)) (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale)))
          (local.set $h (v128.load offset=16 (local.get $src)))
          (local.set $max (i16x8.max_s (local.get $max) (v128.and (local.get $h) (local.get $k7FFF))))
          (v128.store offset=32 (local.get $dst)
            (f32x4.mul
              (v128.and
                (i32x4.shr_s (i8x16.shuffle 0 1 0 1 2 3 2 3 4 5 4 5 6 7 6 7 (local.get $h) (local.get $h)) (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale)))
          (v128.store offset=48 (local.get $dst)
            (f32x4.mul
              (v128.and
                (i32x4.shr_s (i8x16.shuffle 8 9 8 9 10 11 10 11 12 13 12 13 14 15 14 15 (local.get $h) (local.get $h)) (i32.const 3))
                (local.get $kKeep))
              (local.get $kScale)))
          (local.set $src (i32.add (local.get $src) (i32.const 32)))
          (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
          (br_if $step (i32.lt_u (local.get $src) (local.get $stop))))
        (if
          (v128.any_true (i16x8.gt_s (local.get $max) (v128.const i16x8 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff 0x7bff)))
          (then (return (i32.const 1))))
        (br_if $chunk (i32.lt_u (local.get $src) (local.get $end)))))
    (i32.const 0))

  ;; $n fp16 at $src -> $n f32 at $dst: the common-case kernel, redone in full only when Inf or NaN showed up.
  (func $f16_to_f32 (export "f16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (if (call $f16_to_f32_common (local.get $src) (local.get $dst) (local.get $n))
      (then (call $f16_to_f32_full (local.get $src) (local.get $dst) (local.get $n)))))

  ;; $rows rows of $width elements, each starting $srcStride bytes after the previous one at $src, converted into
  ;; one contiguous run at $dst (stride padding skipped). Rows are done in order, each rounded up to 16 elements: the
  ;; overrun of one row is overwritten by the next, the last one lands in the host's slack.
  (func (export "f16_to_f32_rows") (param $src i32) (param $srcStride i32) (param $dst i32) (param $width i32) (param $rows i32)
    (local $n i32)
    (local.set $n (i32.and (i32.add (local.get $width) (i32.const 15)) (i32.const -16)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        (call $f16_to_f32 (local.get $src) (local.get $dst) (local.get $n))
        (local.set $src (i32.add (local.get $src) (local.get $srcStride)))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $width) (i32.const 2))))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))

  ;; The same for f32 rows into contiguous fp16.
  (func (export "f32_to_f16_rows") (param $src i32) (param $srcStride i32) (param $dst i32) (param $width i32) (param $rows i32)
    (local $n i32)
    (local.set $n (i32.and (i32.add (local.get $width) (i32.const 15)) (i32.const -16)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        (call $f32_to_f16 (local.get $src) (local.get $dst) (local.get $n))
        (local.set $src (i32.add (local.get $src) (local.get $srcStride)))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $width) (i32.const 1))))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))

  ;; $n (< 16) fp16 values from $src to $dst: four at a time, then one by one. A plain loop: memory.copy is a call into
  ;; the engine, which costs more than these few moves.
  (func $copy_halves (param $src i32) (param $dst i32) (param $n i32)
    (block $done
      (loop $quad
        (br_if $done (i32.lt_u (local.get $n) (i32.const 4)))
        (i64.store (local.get $dst) (i64.load (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 8)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (local.set $n (i32.sub (local.get $n) (i32.const 4)))
        (br $quad)))
    (block $end
      (loop $one
        (br_if $end (i32.eqz (local.get $n)))
        (i32.store16 (local.get $dst) (i32.load16_u (local.get $src)))
        (local.set $src (i32.add (local.get $src) (i32.const 2)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $one))))

  ;; $rows rows of $width f32, contiguous from $src, into fp16 rows $dstStride bytes apart from $dst, writing exactly
  ;; $width elements per row so that stride padding is never touched. Whole 16-element steps go straight to the row;
  ;; the last (width mod 16) elements are converted into $scratch (32 bytes) and copied over. Reads up to 15 elements
  ;; past the source row, which the host keeps readable.
  (func (export "f32_to_f16_rows_exact") (param $src i32) (param $dst i32) (param $dstStride i32) (param $width i32) (param $rows i32) (param $scratch i32)
    (local $body i32) (local $tail i32)
    (local.set $body (i32.and (local.get $width) (i32.const -16)))
    (local.set $tail (i32.and (local.get $width) (i32.const 15)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        (if (local.get $body) (then (call $f32_to_f16 (local.get $src) (local.get $dst) (local.get $body))))
        (if (local.get $tail)
          (then
            (call $f32_to_f16 (i32.add (local.get $src) (i32.shl (local.get $body) (i32.const 2))) (local.get $scratch) (i32.const 16))
            (call $copy_halves (local.get $scratch) (i32.add (local.get $dst) (i32.shl (local.get $body) (i32.const 1))) (local.get $tail))))
        (local.set $src (i32.add (local.get $src) (i32.shl (local.get $width) (i32.const 2))))
        (local.set $dst (i32.add (local.get $dst) (local.get $dstStride)))
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))
)
