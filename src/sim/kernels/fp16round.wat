;; fp16 storage between ops in the simulator's "ane" numerics, in place over the GEMM kernels' shared memory (the
;; rules of numerics.ts roundBitsToFp16 and applyMatmulCliff, bit for bit): four floats at a time, then one by one.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; Rounds n float32 at p (bytes) to the fp16 grid: |x| < 2^-14 becomes a zero of x's sign, |x| ≥ 65520 (up to
  ;; Inf) ±Inf, NaN stays as it is, anything else rounds its low 13 mantissa bits away to nearest even.
  (func (export "round_fp16") (param $p i32) (param $n i32)
    (local $end i32) (local $end4 i32) (local $v v128) (local $m v128) (local $sign v128) (local $r v128)
    (local $x i32) (local $mx i32)
    ;; Constants in locals, so the loop does not rebuild them each time round.
    (local $abs v128) (local $sgn v128) (local $half v128) (local $one v128) (local $keep v128) (local $inf v128)
    (local $big v128) (local $small v128)
    (local.set $abs (i32x4.splat (i32.const 0x7fffffff)))
    (local.set $sgn (i32x4.splat (i32.const 0x80000000)))
    (local.set $half (i32x4.splat (i32.const 0xfff)))
    (local.set $one (i32x4.splat (i32.const 1)))
    (local.set $keep (i32x4.splat (i32.const 0xffffe000)))
    (local.set $inf (i32x4.splat (i32.const 0x7f800000)))
    (local.set $big (i32x4.splat (i32.const 0x477fefff)))
    (local.set $small (i32x4.splat (i32.const 0x38800000)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done4 (loop $l4
      (br_if $done4 (i32.ge_u (local.get $p) (local.get $end4)))
      (local.set $v (v128.load (local.get $p)))
      (local.set $m (v128.and (local.get $v) (local.get $abs)))
      (local.set $sign (v128.and (local.get $v) (local.get $sgn)))
      (local.set $r (v128.and
        (i32x4.add (i32x4.add (local.get $v) (local.get $half))
                   (v128.and (i32x4.shr_u (local.get $v) (i32.const 13)) (local.get $one)))
        (local.get $keep)))
      ;; |x| ≥ 65520 becomes ±Inf, then a NaN is put back as it was, then |x| < 2^-14 loses all but its sign.
      (local.set $r (v128.bitselect (v128.or (local.get $sign) (local.get $inf)) (local.get $r)
                                    (i32x4.gt_s (local.get $m) (local.get $big))))
      (local.set $r (v128.bitselect (local.get $v) (local.get $r) (i32x4.gt_s (local.get $m) (local.get $inf))))
      (local.set $r (v128.andnot (local.get $r) (v128.and (i32x4.gt_s (local.get $small) (local.get $m)) (local.get $abs))))
      (v128.store (local.get $p) (local.get $r))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $l4)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (i32.load (local.get $p)))
      (local.set $mx (i32.and (local.get $x) (i32.const 0x7fffffff)))
      (if (i32.lt_u (local.get $mx) (i32.const 0x38800000))
        (then (i32.store (local.get $p) (i32.and (local.get $x) (i32.const 0x80000000))))
        (else
          (if (i32.lt_u (local.get $mx) (i32.const 0x477ff000))
            (then (i32.store (local.get $p)
              (i32.and (i32.add (i32.add (local.get $x) (i32.const 0xfff))
                                (i32.and (i32.shr_u (local.get $x) (i32.const 13)) (i32.const 1)))
                       (i32.const 0xffffe000))))
            (else
              (if (i32.le_u (local.get $mx) (i32.const 0x7f800000))
                (then (i32.store (local.get $p)
                  (i32.or (i32.and (local.get $x) (i32.const 0x80000000)) (i32.const 0x7f800000)))))))))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br $l))))

  ;; The matmul overflow cliff: n float32 at p with x ≥ 32752 become +Inf, x ≤ −32752 −Inf (NaN stays).
  (func (export "cliff") (param $p i32) (param $n i32)
    (local $end i32) (local $end4 i32) (local $v v128) (local $x f32)
    (local $hi v128) (local $lo v128) (local $pinf v128) (local $ninf v128)
    (local.set $hi (f32x4.splat (f32.const 32752)))
    (local.set $lo (f32x4.splat (f32.const -32752)))
    (local.set $pinf (f32x4.splat (f32.const inf)))
    (local.set $ninf (f32x4.splat (f32.const -inf)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done4 (loop $l4
      (br_if $done4 (i32.ge_u (local.get $p) (local.get $end4)))
      (local.set $v (v128.load (local.get $p)))
      (local.set $v (v128.bitselect (local.get $pinf) (local.get $v) (f32x4.ge (local.get $v) (local.get $hi))))
      (local.set $v (v128.bitselect (local.get $ninf) (local.get $v) (f32x4.le (local.get $v) (local.get $lo))))
      (v128.store (local.get $p) (local.get $v))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $l4)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (f32.load (local.get $p)))
      (if (f32.ge (local.get $x) (f32.const 32752))
        (then (f32.store (local.get $p) (f32.const inf)))
        (else (if (f32.le (local.get $x) (f32.const -32752))
          (then (f32.store (local.get $p) (f32.const -inf))))))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br $l)))))
