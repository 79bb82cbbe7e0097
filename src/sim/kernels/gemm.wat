;; Blocked fp32 GEMM for the simulator: C[M×N] (+)= A[M×K] · B[K×N] with f32x4 SIMD.
;; A and C are row-major with byte row strides; B has arbitrary byte strides (so a transposed B costs nothing: the
;; packing step reads it either way). B is packed per (KC × NC) block into 8-column panels; a 4×8 register tile
;; accumulates in fp32, summing over k in increasing order (the JS fallback adds in the same order, so both agree
;; bit for bit). Edge tiles go through a 4×8 scratch tile so the inner kernel never needs bounds checks.
(module
  (memory (export "memory") 1)

  ;; Packs B[kc × nc] (byte strides sk, sn) into ceil(nc/8) panels of kc×8 floats at dst, zero-filling columns ≥ nc.
  (func $pack_b (param $b i32) (param $sk i32) (param $sn i32) (param $kc i32) (param $nc i32) (param $dst i32)
    (local $j0 i32) (local $k i32) (local $j i32) (local $cols i32) (local $src i32) (local $row i32)
    (local.set $j0 (i32.const 0))
    (block $done_panels
      (loop $panels
        (br_if $done_panels (i32.ge_s (local.get $j0) (local.get $nc)))
        (local.set $cols (i32.sub (local.get $nc) (local.get $j0)))
        (if (i32.gt_s (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
        (local.set $row (i32.add (local.get $b) (i32.mul (local.get $j0) (local.get $sn))))
        (local.set $k (i32.const 0))
        (block $done_k
          (loop $ks
            (br_if $done_k (i32.ge_s (local.get $k) (local.get $kc)))
            (if (i32.and (i32.eq (local.get $cols) (i32.const 8)) (i32.eq (local.get $sn) (i32.const 4)))
              (then
                (v128.store (local.get $dst) (v128.load (local.get $row)))
                (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $row))))
              (else
                (local.set $j (i32.const 0))
                (local.set $src (local.get $row))
                (block $done_j
                  (loop $js
                    (br_if $done_j (i32.ge_s (local.get $j) (i32.const 8)))
                    (if (i32.lt_s (local.get $j) (local.get $cols))
                      (then (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
                                       (f32.load (local.get $src))))
                      (else (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
                                       (f32.const 0))))
                    (local.set $src (i32.add (local.get $src) (local.get $sn)))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $js)))))
            (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
            (local.set $row (i32.add (local.get $row) (local.get $sk)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $ks)))
        (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
        (br $panels))))

  ;; 4×8 tile: rows a0..a3 (each advancing 4 bytes per k), packed panel bp (32 bytes per k), C at c with row
  ;; stride ldc bytes; acc ≠ 0 adds to C, else overwrites it.
  (func $kernel (param $a0 i32) (param $a1 i32) (param $a2 i32) (param $a3 i32) (param $bp i32) (param $kc i32)
                (param $c i32) (param $ldc i32) (param $acc i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $b0 v128) (local $b1 v128) (local $a v128) (local $end i32)
    (local $r1 i32) (local $r2 i32) (local $r3 i32)
    (local.set $r1 (i32.add (local.get $c) (local.get $ldc)))
    (local.set $r2 (i32.add (local.get $r1) (local.get $ldc)))
    (local.set $r3 (i32.add (local.get $r2) (local.get $ldc)))
    (if (local.get $acc)
      (then
        (local.set $c00 (v128.load (local.get $c)))
        (local.set $c01 (v128.load offset=16 (local.get $c)))
        (local.set $c10 (v128.load (local.get $r1)))
        (local.set $c11 (v128.load offset=16 (local.get $r1)))
        (local.set $c20 (v128.load (local.get $r2)))
        (local.set $c21 (v128.load offset=16 (local.get $r2)))
        (local.set $c30 (v128.load (local.get $r3)))
        (local.set $c31 (v128.load offset=16 (local.get $r3)))))
    (local.set $end (i32.add (local.get $bp) (i32.shl (local.get $kc) (i32.const 5))))
    (block $done
      (loop $k
        (br_if $done (i32.ge_u (local.get $bp) (local.get $end)))
        (local.set $b0 (v128.load (local.get $bp)))
        (local.set $b1 (v128.load offset=16 (local.get $bp)))
        (local.set $a (v128.load32_splat (local.get $a0)))
        (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a) (local.get $b0))))
        (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a) (local.get $b1))))
        (local.set $a (v128.load32_splat (local.get $a1)))
        (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a) (local.get $b0))))
        (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a) (local.get $b1))))
        (local.set $a (v128.load32_splat (local.get $a2)))
        (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $a) (local.get $b0))))
        (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $a) (local.get $b1))))
        (local.set $a (v128.load32_splat (local.get $a3)))
        (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $a) (local.get $b0))))
        (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $a) (local.get $b1))))
        (local.set $a0 (i32.add (local.get $a0) (i32.const 4)))
        (local.set $a1 (i32.add (local.get $a1) (i32.const 4)))
        (local.set $a2 (i32.add (local.get $a2) (i32.const 4)))
        (local.set $a3 (i32.add (local.get $a3) (i32.const 4)))
        (local.set $bp (i32.add (local.get $bp) (i32.const 32)))
        (br $k)))
    (v128.store (local.get $c) (local.get $c00))
    (v128.store offset=16 (local.get $c) (local.get $c01))
    (v128.store (local.get $r1) (local.get $c10))
    (v128.store offset=16 (local.get $r1) (local.get $c11))
    (v128.store (local.get $r2) (local.get $c20))
    (v128.store offset=16 (local.get $r2) (local.get $c21))
    (v128.store (local.get $r3) (local.get $c30))
    (v128.store offset=16 (local.get $r3) (local.get $c31)))

  ;; Copies the valid rows×cols corner between C (stride ldc bytes) and the 4×8 tile (stride 32 bytes).
  (func $tile_copy (param $from i32) (param $fromStride i32) (param $to i32) (param $toStride i32)
                   (param $rows i32) (param $cols i32)
    (local $r i32) (local $j i32)
    (block $done_r
      (loop $rs
        (br_if $done_r (i32.ge_s (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $js
            (br_if $done_j (i32.ge_s (local.get $j) (local.get $cols)))
            (f32.store (i32.add (local.get $to) (i32.shl (local.get $j) (i32.const 2)))
                       (f32.load (i32.add (local.get $from) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $js)))
        (local.set $from (i32.add (local.get $from) (local.get $fromStride)))
        (local.set $to (i32.add (local.get $to) (local.get $toStride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rs))))

  ;; C (+)= A·B. Sizes in elements, strides in bytes; pack needs KC·roundUp8(NC)·4 bytes, tile 128 bytes.
  (func (export "gemm") (param $M i32) (param $N i32) (param $K i32)
                        (param $a i32) (param $lda i32) (param $b i32) (param $sk i32) (param $sn i32)
                        (param $c i32) (param $ldc i32) (param $accumulate i32) (param $pack i32) (param $tile i32)
    (local $k0 i32) (local $kc i32) (local $n0 i32) (local $nc i32) (local $i0 i32) (local $j0 i32)
    (local $rows i32) (local $cols i32) (local $acc i32) (local $abase i32) (local $last i32)
    (local $a0 i32) (local $a1 i32) (local $a2 i32) (local $a3 i32) (local $bp i32) (local $cp i32)
    (if (i32.or (i32.le_s (local.get $M) (i32.const 0)) (i32.le_s (local.get $N) (i32.const 0))) (then (return)))
    (if (i32.le_s (local.get $K) (i32.const 0))
      (then
        ;; An empty sum is zero: clear C unless accumulating.
        (if (i32.eqz (local.get $accumulate))
          (then
            (local.set $i0 (i32.const 0))
            (block $dz (loop $zr
              (br_if $dz (i32.ge_s (local.get $i0) (local.get $M)))
              (memory.fill (i32.add (local.get $c) (i32.mul (local.get $i0) (local.get $ldc)))
                           (i32.const 0) (i32.shl (local.get $N) (i32.const 2)))
              (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
              (br $zr)))))
        (return)))
    (local.set $last (i32.sub (local.get $M) (i32.const 1)))
    (local.set $k0 (i32.const 0))
    (block $done_k (loop $ks
      (br_if $done_k (i32.ge_s (local.get $k0) (local.get $K)))
      (local.set $kc (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 256)) (then (local.set $kc (i32.const 256))))
      (local.set $acc (i32.or (local.get $accumulate) (i32.gt_s (local.get $k0) (i32.const 0))))
      (local.set $n0 (i32.const 0))
      (block $done_n (loop $ns
        (br_if $done_n (i32.ge_s (local.get $n0) (local.get $N)))
        (local.set $nc (i32.sub (local.get $N) (local.get $n0)))
        (if (i32.gt_s (local.get $nc) (i32.const 256)) (then (local.set $nc (i32.const 256))))
        (call $pack_b
          (i32.add (local.get $b) (i32.add (i32.mul (local.get $k0) (local.get $sk)) (i32.mul (local.get $n0) (local.get $sn))))
          (local.get $sk) (local.get $sn) (local.get $kc) (local.get $nc) (local.get $pack))
        (local.set $i0 (i32.const 0))
        (block $done_i (loop $is
          (br_if $done_i (i32.ge_s (local.get $i0) (local.get $M)))
          (local.set $rows (i32.sub (local.get $M) (local.get $i0)))
          (if (i32.gt_s (local.get $rows) (i32.const 4)) (then (local.set $rows (i32.const 4))))
          ;; Rows past M read row M−1 (their results are discarded), so the kernel needs no row checks.
          (local.set $abase (i32.add (local.get $a) (i32.shl (local.get $k0) (i32.const 2))))
          (local.set $a0 (i32.add (local.get $abase) (i32.mul (local.get $i0) (local.get $lda))))
          (local.set $a1 (i32.add (local.get $abase) (i32.mul
            (select (i32.add (local.get $i0) (i32.const 1)) (local.get $last) (i32.lt_s (i32.add (local.get $i0) (i32.const 1)) (local.get $M)))
            (local.get $lda))))
          (local.set $a2 (i32.add (local.get $abase) (i32.mul
            (select (i32.add (local.get $i0) (i32.const 2)) (local.get $last) (i32.lt_s (i32.add (local.get $i0) (i32.const 2)) (local.get $M)))
            (local.get $lda))))
          (local.set $a3 (i32.add (local.get $abase) (i32.mul
            (select (i32.add (local.get $i0) (i32.const 3)) (local.get $last) (i32.lt_s (i32.add (local.get $i0) (i32.const 3)) (local.get $M)))
            (local.get $lda))))
          (local.set $j0 (i32.const 0))
          (block $done_j (loop $js
            (br_if $done_j (i32.ge_s (local.get $j0) (local.get $nc)))
            (local.set $cols (i32.sub (local.get $nc) (local.get $j0)))
            (if (i32.gt_s (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
            (local.set $bp (i32.add (local.get $pack) (i32.mul (local.get $j0) (i32.shl (local.get $kc) (i32.const 2)))))
            (local.set $cp (i32.add (local.get $c) (i32.add (i32.mul (local.get $i0) (local.get $ldc))
                                                           (i32.shl (i32.add (local.get $n0) (local.get $j0)) (i32.const 2)))))
            (if (i32.and (i32.eq (local.get $rows) (i32.const 4)) (i32.eq (local.get $cols) (i32.const 8)))
              (then
                (call $kernel (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3) (local.get $bp)
                              (local.get $kc) (local.get $cp) (local.get $ldc) (local.get $acc)))
              (else
                (if (local.get $acc)
                  (then (call $tile_copy (local.get $cp) (local.get $ldc) (local.get $tile) (i32.const 32)
                                         (local.get $rows) (local.get $cols))))
                (call $kernel (local.get $a0) (local.get $a1) (local.get $a2) (local.get $a3) (local.get $bp)
                              (local.get $kc) (local.get $tile) (i32.const 32) (local.get $acc))
                (call $tile_copy (local.get $tile) (i32.const 32) (local.get $cp) (local.get $ldc)
                                 (local.get $rows) (local.get $cols))))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $js)))
          (local.set $i0 (i32.add (local.get $i0) (i32.const 4)))
          (br $is)))
        (local.set $n0 (i32.add (local.get $n0) (local.get $nc)))
        (br $ns)))
      (local.set $k0 (i32.add (local.get $k0) (local.get $kc)))
      (br $ks)))))
