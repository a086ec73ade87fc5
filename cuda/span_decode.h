/*
 * span_decode.h: C ABI of the span decode-attention kernel (libspanattn.so).
 *
 * One new query token per sequence attends to the KV-cache positions listed in
 * that sequence's intervals. Loaded from Python with ctypes
 * (python/spanattn/kernel.py); build with `spanattn build-kernel`.
 *
 * Layouts (all contiguous, row-major):
 *   q            (B, Hq, D)          bf16 or fp16
 *   k_cache      (B, Hkv, Nmax, D)   same dtype as q
 *   v_cache      (B, Hkv, Nmax, D)   same dtype as q
 *   intervals    (B, I, 2)           int32 [start, end) token ranges
 *   n_intervals  (B,)                int32 live entries per row of intervals
 *   seq_lens     (B,)                int32 valid cache length per sequence
 *   out          (B, Hq, D)          same dtype as q
 *   workspace    fp32 scratch of spanattn_plan()'s size (may be NULL when 0)
 *
 * Interval contract: entries are sorted, non-overlapping, non-empty and lie in
 * [0, seq_len). normalize_intervals() in kernel.py produces that form on the GPU.
 * The kernel clips every interval to [0, min(seq_len, Nmax)) and clamps every
 * index it reads, so any input is memory-safe; only the softmax result of
 * overlapping input is unspecified (overlaps are counted twice). A sequence with
 * no kept token gets an all-zero output row.
 *
 * The launch geometry depends only on (B, Hq, Hkv, Nmax, D, I, dtype, device),
 * never on the data: calls can be captured in a CUDA graph. Nothing here
 * synchronises with the host.
 */
#ifndef SPANATTN_SPAN_DECODE_H
#define SPANATTN_SPAN_DECODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPANATTN_ABI_VERSION 3
#define SPANATTN_MAX_INTERVALS 8192

enum spanattn_dtype { SPANATTN_BF16 = 0, SPANATTN_FP16 = 1 };

enum spanattn_status {
  SPANATTN_OK = 0,
  SPANATTN_ERR_ARGUMENT = 1, /* bad shape, dtype, pointer or workspace size */
  SPANATTN_ERR_CUDA = 2      /* a CUDA runtime call or a launch failed */
};

int spanattn_abi_version(void);

/* Message of the last non-OK status returned on this host thread. */
const char* spanattn_last_error(void);

/* Launch plan for a shape: number of KV splits and fp32 workspace bytes. */
int spanattn_plan(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
                  int max_intervals, int dtype, int device, int* num_splits,
                  size_t* workspace_bytes);

/* Enqueue the op on `stream` (a cudaStream_t; NULL = legacy default stream). */
int spanattn_span_decode(const void* q, const void* k_cache, const void* v_cache,
                         const int32_t* intervals, const int32_t* n_intervals,
                         const int32_t* seq_lens, void* out, void* workspace,
                         size_t workspace_bytes, int batch, int heads_q, int heads_kv,
                         int max_len, int head_dim, int max_intervals, float scale,
                         int dtype, void* stream);

/* The balanced schedule's plan as a step of its own, for a caller that attends with the same
 * intervals, n_intervals and seq_lens several times, like the layers of one decode step:
 * plan once, then attend in every layer without the plan kernel.
 *  - spanattn_plan_sizes: splits, bytes of the partials workspace that
 *    spanattn_span_decode_planned needs, and bytes of the plan buffer (0 under the rows
 *    schedule, which has no plan; spanattn_plan's workspace_bytes is their sum, aligned).
 *  - spanattn_span_plan: enqueue the plan kernel into plan_buf (a no-op under rows).
 *  - spanattn_span_decode_planned: spanattn_span_decode without the plan kernel, reading the
 *    plan from plan_buf. The plan must come from spanattn_span_plan on the same stream, for
 *    the same shape, schedule and tuning, with the intervals, n_intervals and seq_lens the
 *    call passes (it decides which tokens each block reads); the buffer must not be written
 *    again until the calls that read it have run. */
int spanattn_plan_sizes(int batch, int heads_q, int heads_kv, int max_len, int head_dim,
                        int max_intervals, int dtype, int device, int* num_splits,
                        size_t* partials_bytes, size_t* plan_bytes);
int spanattn_span_plan(const int32_t* intervals, const int32_t* n_intervals, const int32_t* seq_lens,
                       void* plan_buf, size_t plan_bytes, int batch, int heads_q, int heads_kv,
                       int max_len, int head_dim, int max_intervals, int dtype, void* stream);
int spanattn_span_decode_planned(const void* q, const void* k_cache, const void* v_cache,
                                 const int32_t* intervals, const int32_t* n_intervals,
                                 const int32_t* seq_lens, const void* plan_buf, size_t plan_bytes,
                                 void* out, void* workspace, size_t workspace_bytes, int batch,
                                 int heads_q, int heads_kv, int max_len, int head_dim,
                                 int max_intervals, float scale, int dtype, void* stream);

/* Tuning knobs for benchmarks (0 = automatic): kernel variant (1, 3 = SIMT ring
 * depths, 5 = tensor cores; see kVariants in span_decode.cu) and a forced number of KV
 * splits. Process-wide. */
int spanattn_set_tuning(int variant, int num_splits);
/* Work schedule, process-wide (span_schedule.h): 0 = rows (every (sequence, KV head) cut
 * into the same S splits), 1 = balanced (the default: splits per sequence in proportion
 * to the tokens it keeps, from a plan kernel run before the split kernel; one launch more
 * per call, or per step with spanattn_span_plan). Changes spanattn_plan()'s workspace size. */
int spanattn_set_schedule(int schedule);
int spanattn_get_schedule(void);
/* How the balanced schedule merges a sequence's splits, process-wide: 0 = a combine kernel
 * after the split kernel (the default), 1 = fused: the last split block of each (sequence,
 * KV head) to finish merges them (one launch fewer per call; the same bits). No effect under
 * the rows schedule. */
int spanattn_set_combine(int fused);
int spanattn_get_combine(void);
/* The balanced schedule's plan computed on the host, for tests (no GPU needed): with
 * num_splits given, fills map (4 ints a block: sequence or -1, unit, split, splits of the
 * sequence), pieces (2 a block: first and end kept-token index of the block's piece),
 * row_start and row_n (B each), and *grid_blocks. With map NULL, only *grid_blocks. */
int spanattn_schedule_host(int batch, int heads_q, int heads_kv, int max_len, int max_intervals,
                           int num_splits, const int32_t* intervals, const int32_t* n_intervals,
                           const int32_t* seq_lens, int32_t* map, int32_t* pieces,
                           int32_t* row_start, int32_t* row_n, int* grid_blocks);

#ifdef __cplusplus
}
#endif

#endif /* SPANATTN_SPAN_DECODE_H */
