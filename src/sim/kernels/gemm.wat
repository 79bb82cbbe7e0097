;; Blocked fp32 GEMM driver for the simulator: C[rows i0..i1 × N] (+)= A · B with B packed beforehand (pack_b) into
;; 8-column panels per 512-row block of k, so constant weights are packed once and threads share one packed copy.
;; Rows of A go 6 (or 4) at a time through a per-thread scratch where they sit at a fixed stride, so the tiles'
;; inner loop advances one A pointer and one B pointer.
;; The multiply-add tiles are imported (gemm-tiles.wat: f32x4 mul then add; gemm-tiles-fma.wat: relaxed fused
;; multiply-add), so one driver serves both. Sums run over k in increasing order. Edge tiles go through a 6×8
;; scratch tile so the kernels never need bounds checks. The memory is imported and shared, so worker threads run
;; this same code over disjoint row ranges of C.
(module
  (import "env" "memory" (memory 1 65536 shared))
  ;; 6 (4) rows × 8 columns: A rows at pa + 2048·r (4 bytes per k), panel bp (32 bytes per k), kc, C at c (row
  ;; stride ldc bytes), accumulate.
  (import "kern" "k6x8" (func $k6x8 (param i32 i32 i32 i32 i32 i32)))
  (import "kern" "k4x8" (func $k4x8 (param i32 i32 i32 i32 i32 i32)))
  ;; 1 row × 8 columns: row a (4 bytes per k), panel bp, C at c.
  (import "kern" "k1x8" (func $k1x8 (param i32 i32 i32 i32 i32)))

  ;; Packs B[K × N] (byte strides sk, sn) at dst: per 512-row block k0 (kc rows), ceil(N/8) panels of kc×8 floats,
  ;; block k0 at dst + k0·N8·4 and its panel j0 at + j0·kc·4 (N8 = N rounded up to 8); columns ≥ N are zero.
  (func (export "pack_b") (param $b i32) (param $sk i32) (param $sn i32) (param $K i32) (param $N i32) (param $dst i32)
    (local $k0 i32) (local $kc i32) (local $j0 i32) (local $k i32) (local $j i32) (local $cols i32)
    (local $src i32) (local $row i32) (local $d i32) (local $n8 i32)
    (local.set $n8 (i32.and (i32.add (local.get $N) (i32.const 7)) (i32.const -8)))
    (block $done_blocks (loop $blocks
      (br_if $done_blocks (i32.ge_s (local.get $k0) (local.get $K)))
      (local.set $kc (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 512)) (then (local.set $kc (i32.const 512))))
      (local.set $d (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $k0) (local.get $n8)) (i32.const 2))))
      (local.set $j0 (i32.const 0))
      (block $done_panels (loop $panels
        (br_if $done_panels (i32.ge_s (local.get $j0) (local.get $N)))
        (local.set $cols (i32.sub (local.get $N) (local.get $j0)))
        (if (i32.gt_s (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
        (local.set $row (i32.add (local.get $b)
          (i32.add (i32.mul (local.get $k0) (local.get $sk)) (i32.mul (local.get $j0) (local.get $sn)))))
        (local.set $k (i32.const 0))
        (block $done_k (loop $ks
          (br_if $done_k (i32.ge_s (local.get $k) (local.get $kc)))
          (if (i32.and (i32.eq (local.get $cols) (i32.const 8)) (i32.eq (local.get $sn) (i32.const 4)))
            (then
              (v128.store (local.get $d) (v128.load (local.get $row)))
              (v128.store offset=16 (local.get $d) (v128.load offset=16 (local.get $row))))
            (else
              (local.set $j (i32.const 0))
              (local.set $src (local.get $row))
              (block $done_j (loop $js
                (br_if $done_j (i32.ge_s (local.get $j) (i32.const 8)))
                (if (i32.lt_s (local.get $j) (local.get $cols))
                  (then (f32.store (i32.add (local.get $d) (i32.shl (local.get $j) (i32.const 2)))
                                   (f32.load (local.get $src))))
                  (else (f32.store (i32.add (local.get $d) (i32.shl (local.get $j) (i32.const 2)))
                                   (f32.const 0))))
                (local.set $src (i32.add (local.get $src) (local.get $sn)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $js)))))
          (local.set $d (i32.add (local.get $d) (i32.const 32)))
          (local.set $row (i32.add (local.get $row) (local.get $sk)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $ks)))
        (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
        (br $panels)))
      (local.set $k0 (i32.add (local.get $k0) (local.get $kc)))
      (br $blocks))))

  ;; Copies the valid rows×cols corner between C (stride ldc bytes) and the 6×8 tile (stride 32 bytes).
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

  ;; Rows i0..i1 of C (+)= A·B, B packed by pack_b. Sizes in elements, strides in bytes; tile: TILE_BYTES of
  ;; per-thread scratch (the edge tile of C at +0, the rows of A being multiplied at +256, 2048 bytes apart).
  ;; K = 0 is the caller's (an empty sum). Per 512-row block of k, columns go in 256-wide groups (a 512 KiB slice of
  ;; packed B stays in L2 while every row passes over it).
  (func (export "gemm_packed") (param $i0 i32) (param $i1 i32) (param $N i32) (param $K i32)
                               (param $a i32) (param $lda i32) (param $bp i32)
                               (param $c i32) (param $ldc i32) (param $accumulate i32) (param $tile i32)
    (local $k0 i32) (local $kc i32) (local $n0 i32) (local $nEnd i32) (local $i i32) (local $j0 i32)
    (local $rows i32) (local $cols i32) (local $acc i32) (local $abase i32) (local $block i32) (local $n8 i32)
    (local $a0 i32) (local $p i32) (local $cp i32) (local $r i32) (local $pa i32)
    (local.set $n8 (i32.and (i32.add (local.get $N) (i32.const 7)) (i32.const -8)))
    (local.set $pa (i32.add (local.get $tile) (i32.const 256)))
    (block $done_k (loop $ks
      (br_if $done_k (i32.ge_s (local.get $k0) (local.get $K)))
      (local.set $kc (i32.sub (local.get $K) (local.get $k0)))
      (if (i32.gt_s (local.get $kc) (i32.const 512)) (then (local.set $kc (i32.const 512))))
      (local.set $acc (i32.or (local.get $accumulate) (i32.gt_s (local.get $k0) (i32.const 0))))
      (local.set $block (i32.add (local.get $bp) (i32.shl (i32.mul (local.get $k0) (local.get $n8)) (i32.const 2))))
      (local.set $abase (i32.add (local.get $a) (i32.shl (local.get $k0) (i32.const 2))))
      (local.set $n0 (i32.const 0))
      (block $done_n (loop $ns
        (br_if $done_n (i32.ge_s (local.get $n0) (local.get $N)))
        (local.set $nEnd (i32.add (local.get $n0) (i32.const 256)))
        (if (i32.gt_s (local.get $nEnd) (local.get $N)) (then (local.set $nEnd (local.get $N))))
        (local.set $i (local.get $i0))
        (block $done_i (loop $is
          (br_if $done_i (i32.ge_s (local.get $i) (local.get $i1)))
          ;; 6 rows at a time, then 4, then one by one.
          (local.set $rows (i32.sub (local.get $i1) (local.get $i)))
          (if (i32.ge_s (local.get $rows) (i32.const 6))
            (then (local.set $rows (i32.const 6)))
            (else (if (i32.ge_s (local.get $rows) (i32.const 4)) (then (local.set $rows (i32.const 4))))))
          (local.set $a0 (i32.add (local.get $abase) (i32.mul (local.get $i) (local.get $lda))))
          (if (i32.ge_s (local.get $rows) (i32.const 4))
            (then
              ;; The rows' k-block goes to the scratch, 2048 bytes apart, so the tile reads them from one pointer.
              (local.set $r (i32.const 0))
              (block $done_copy (loop $copy
                (br_if $done_copy (i32.ge_s (local.get $r) (local.get $rows)))
                (memory.copy (i32.add (local.get $pa) (i32.shl (local.get $r) (i32.const 11)))
                             (i32.add (local.get $a0) (i32.mul (local.get $r) (local.get $lda)))
                             (i32.shl (local.get $kc) (i32.const 2)))
                (local.set $r (i32.add (local.get $r) (i32.const 1)))
                (br $copy)))))
          (local.set $j0 (local.get $n0))
          (block $done_j (loop $js
            (br_if $done_j (i32.ge_s (local.get $j0) (local.get $nEnd)))
            (local.set $cols (i32.sub (local.get $N) (local.get $j0)))
            (if (i32.gt_s (local.get $cols) (i32.const 8)) (then (local.set $cols (i32.const 8))))
            (local.set $p (i32.add (local.get $block) (i32.mul (local.get $j0) (i32.shl (local.get $kc) (i32.const 2)))))
            (local.set $cp (i32.add (local.get $c) (i32.add (i32.mul (local.get $i) (local.get $ldc))
                                                           (i32.shl (local.get $j0) (i32.const 2)))))
            (if (i32.ge_s (local.get $rows) (i32.const 4))
              (then
                (if (i32.eq (local.get $cols) (i32.const 8))
                  (then
                    (if (i32.eq (local.get $rows) (i32.const 6))
                      (then (call $k6x8 (local.get $pa) (local.get $p) (local.get $kc) (local.get $cp) (local.get $ldc)
                                        (local.get $acc)))
                      (else (call $k4x8 (local.get $pa) (local.get $p) (local.get $kc) (local.get $cp) (local.get $ldc)
                                        (local.get $acc)))))
                  (else
                    (if (local.get $acc)
                      (then (call $tile_copy (local.get $cp) (local.get $ldc) (local.get $tile) (i32.const 32)
                                             (local.get $rows) (local.get $cols))))
                    (if (i32.eq (local.get $rows) (i32.const 6))
                      (then (call $k6x8 (local.get $pa) (local.get $p) (local.get $kc) (local.get $tile) (i32.const 32)
                                        (local.get $acc)))
                      (else (call $k4x8 (local.get $pa) (local.get $p) (local.get $kc) (local.get $tile) (i32.const 32)
                                        (local.get $acc))))
                    (call $tile_copy (local.get $tile) (i32.const 32) (local.get $cp) (local.get $ldc)
                                     (local.get $rows) (local.get $cols)))))
              (else
                ;; Fewer than 4 rows left: one row at a time, so no work is spent on rows that do not exist.
                (local.set $r (i32.const 0))
                (block $done_r (loop $rs
                  (br_if $done_r (i32.ge_s (local.get $r) (local.get $rows)))
                  (if (i32.eq (local.get $cols) (i32.const 8))
                    (then
                      (call $k1x8 (i32.add (local.get $a0) (i32.mul (local.get $r) (local.get $lda))) (local.get $p)
                                  (local.get $kc) (i32.add (local.get $cp) (i32.mul (local.get $r) (local.get $ldc)))
                                  (local.get $acc)))
                    (else
                      (if (local.get $acc)
                        (then (call $tile_copy (i32.add (local.get $cp) (i32.mul (local.get $r) (local.get $ldc)))
                                               (local.get $ldc) (local.get $tile) (i32.const 32)
                                               (i32.const 1) (local.get $cols))))
                      (call $k1x8 (i32.add (local.get $a0) (i32.mul (local.get $r) (local.get $lda))) (local.get $p)
                                  (local.get $kc) (local.get $tile) (local.get $acc))
                      (call $tile_copy (local.get $tile) (i32.const 32)
                                       (i32.add (local.get $cp) (i32.mul (local.get $r) (local.get $ldc)))
                                       (local.get $ldc) (i32.const 1) (local.get $cols))))
                  (local.set $r (i32.add (local.get $r) (i32.const 1)))
                  (br $rs)))))
            (local.set $j0 (i32.add (local.get $j0) (i32.const 8)))
            (br $js)))
          (local.set $i (i32.add (local.get $i) (local.get $rows)))
          (br $is)))
        (local.set $n0 (local.get $nEnd))
        (br $ns)))
      (local.set $k0 (i32.add (local.get $k0) (local.get $kc)))
      (br $ks)))))
