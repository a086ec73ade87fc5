/*
 * span_schedule.h: the work split of the span decode kernel, shared by the device code
 * (span_decode.cu) and its host-side check (spanattn_schedule_host, tested from Python).
 *
 * Two schedules (spanattn_set_schedule):
 *  - rows (0): grid (S, units per row, B). Each (row, KV head, head chunk)
 *    "unit" is cut into the same S splits of its kept tokens, whatever it keeps.
 *  - balanced (1, the default): a 1-D grid of W + P blocks (W = S x P work blocks, P = B x units per
 *    row). A plan kernel gives each row a number of splits in proportion to the tokens it
 *    keeps, n_b = floor(t_b * W / (Y * T)) (at least 1, even when t_b = 0, at most one per
 *    kMinPieceTokens kept tokens), so every block reads about T * Y / W tokens. A row that
 *    reads its whole context while the others read a few hundred tokens gets many blocks
 *    instead of S long ones. When every row keeps the same count (dense), n_b = S: the same
 *    blocks as the rows schedule. sum(Y * n_b) <= W + P, so the grid always has room; the
 *    blocks past the end of the map exit at once.
 *
 * Everything here is plain integer arithmetic, the same on the host and the device.
 */
#ifndef SPANATTN_SPAN_SCHEDULE_H
#define SPANATTN_SPAN_SCHEDULE_H

#if defined(__CUDACC__)
#define SPANATTN_HD __host__ __device__ __forceinline__
#else
#define SPANATTN_HD inline
#endif

namespace spanattn_schedule {

constexpr int kMinPieceTokens = 16;

SPANATTN_HD int imin(int a, int b) { return a < b ? a : b; }
SPANATTN_HD int imax(int a, int b) { return a > b ? a : b; }

/* seq_len and n_intervals as the kernel reads them (memory-safe clamps). */
SPANATTN_HD int clamp_seq_len(int raw, int max_len) { return imin(imax(raw, 0), max_len); }
SPANATTN_HD int clamp_n_intervals(int raw, int max_intervals) { return imin(imax(raw, 0), max_intervals); }

/* Kept tokens of one interval after clipping it to [0, seq_len). */
SPANATTN_HD int clipped_length(int start, int end, int seq_len) {
  return imax(imin(end, seq_len) - imax(start, 0), 0);
}

/* Kept tokens of one sequence: its clamped intervals clipped to [0, seq_len), summed. */
SPANATTN_HD int row_kept_tokens(const int* iv, int n_intervals, int seq_len) {
  int t = 0;
  for (int i = 0; i < n_intervals; ++i) t += clipped_length(iv[2 * i], iv[2 * i + 1], seq_len);
  return t;
}

/* First kept token of split `split` of `n` over `total` tokens (split == n gives total). */
SPANATTN_HD int piece_begin(int total, int split, int n) {
  return (int)(((long long)total * split) / n);
}

/* Splits of a row keeping t of T tokens (summed over rows), Y units per row, W work blocks.
 * A row that keeps nothing gets one (empty) split too: its block writes the row's zeros, so
 * no other kernel has to (the fused combine has none). */
SPANATTN_HD int row_blocks(long long t, long long total, long long work_blocks, int units_per_row) {
  if (t <= 0) return 1;
  long long n = total > 0 ? (t * work_blocks) / ((long long)units_per_row * total) : 1;
  const long long cap = (t + kMinPieceTokens - 1) / kMinPieceTokens;
  if (n > cap) n = cap;
  if (n < 1) n = 1;
  return (int)n;
}

/* Last row b with row_start[b] <= i (row_start is non-decreasing; rows of zero width share
 * the start of the next row, and the last of equal starts is the one with blocks). */
SPANATTN_HD int row_of_block(const int* row_start, int batch, int i) {
  int lo = 0, hi = batch;  // first index with row_start > i
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (row_start[mid] <= i) lo = mid + 1; else hi = mid;
  }
  return lo - 1;
}

/* One entry of the block map: the block's row, unit, split and the row's split count. */
struct Entry {
  int b, unit, split, n;
};

SPANATTN_HD Entry map_entry(const int* row_start, const int* row_n, int batch, int units_per_row,
                            int total_blocks, int i) {
  Entry e = {-1, 0, 0, 0};
  if (i < 0 || i >= total_blocks) return e;
  const int b = row_of_block(row_start, batch, i);
  const int n = row_n[b];
  const int j = i - row_start[b];
  e.b = b;
  e.unit = j / n;
  e.split = j - e.unit * n;
  e.n = n;
  return e;
}

/* First block of unit `unit` of row b (its n blocks follow it). */
SPANATTN_HD int unit_first_block(const int* row_start, const int* row_n, int b, int unit) {
  return row_start[b] + unit * row_n[b];
}

}  // namespace spanattn_schedule

#endif /* SPANATTN_SPAN_SCHEDULE_H */
