// harness.cu: standalone check + timing of span_decode (llm.c dev/cuda style).
//
// Build and run (GPU machine):
//   python3 cuda/build.py --harness
//   cuda/build/harness                         # checks a sweep of awkward shapes, then times
//   cuda/build/harness --check-only --small    # what compute-sanitizer runs (also with --planned)
//   compute-sanitizer --tool memcheck cuda/build/harness --check-only --small
//
// For every configuration: random bf16/fp16 inputs and random sorted, disjoint
// intervals (one sequence empty, one dense, ragged seq_lens); the output is poisoned
// (all bits set = NaN) before the launch; an fp32 CPU reference over the same rounded
// inputs decides. Pass when max |out - ref| <= 2 output ulps at max |ref| (the output
// is rounded to bf16/fp16 once; fp32 accumulation adds far less than that). Prints
// the first mismatch, then, unless --check-only, ms and GB/s on the bytes it must read.
#include "span_decode.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#define CUDA_CHECK(x)                                                              \
  do {                                                                             \
    cudaError_t e_ = (x);                                                          \
    if (e_ != cudaSuccess) {                                                       \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(2);                                                                     \
    }                                                                              \
  } while (0)

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint32_t next() {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    return (uint32_t)(s >> 11);
  }
  int range(int lo, int hi) { return lo + (int)(next() % (uint32_t)(hi - lo + 1)); }  // [lo, hi]
  float normal() {
    const float u1 = (next() + 1.0f) / 4294967296.0f * 2.f, u2 = next() / 4294967296.0f * 2.f;
    return sqrtf(-2.f * logf(fminf(u1, 1.f))) * cosf(6.2831853f * u2);
  }
};

struct Config {
  int b, hq, hkv, n, d;
  float kept;  // target kept fraction, in runs of 1..run_max tokens
  int run_max;
  bool fp16;
};

static uint16_t to_bits(float x, bool fp16) {
  uint16_t r;
  if (fp16) { __half h = __float2half_rn(x); memcpy(&r, &h, 2); }
  else { __nv_bfloat16 h = __float2bfloat16_rn(x); memcpy(&r, &h, 2); }
  return r;
}
static float from_bits(uint16_t u, bool fp16) {
  if (fp16) { __half h; memcpy(&h, &u, 2); return __half2float(h); }
  __nv_bfloat16 h; memcpy(&h, &u, 2); return __bfloat162float(h);
}

struct Case {
  Config c;
  int I = 0;
  std::vector<uint16_t> q, k, v;
  std::vector<int32_t> iv, n_iv, lens;
  long long kept_tokens = 0;
};

static Case make_case(const Config& c, uint64_t seed) {
  Rng rng(seed);
  Case x;
  x.c = c;
  const size_t kv = (size_t)c.b * c.hkv * c.n * c.d;
  x.q.resize((size_t)c.b * c.hq * c.d);
  x.k.resize(kv);
  x.v.resize(kv);
  for (auto& e : x.q) e = to_bits(rng.normal(), c.fp16);
  for (auto& e : x.k) e = to_bits(rng.normal(), c.fp16);
  for (auto& e : x.v) e = to_bits(rng.normal(), c.fp16);
  std::vector<std::vector<int>> rows(c.b);
  x.lens.resize(c.b);
  for (int b = 0; b < c.b; ++b) {
    const int len = (b == 0) ? c.n : rng.range(std::max(1, c.n / 2), c.n);
    x.lens[b] = len;
    if (c.b > 1 && b == 1) continue;  // sequence 1: empty interval list
    if (b == 2 && c.b > 2) { rows[b] = {0, len}; continue; }  // sequence 2: dense
    int pos = 0;
    while (pos < len) {
      const int run = rng.range(1, c.run_max);
      const int gap = (int)(run * (1.f - c.kept) / std::max(c.kept, 1e-3f)) + rng.range(0, 1);
      const int s = pos, e = std::min(len, pos + run);
      rows[b].push_back(s);
      rows[b].push_back(e);
      pos = e + std::max(gap, 1);
    }
  }
  for (auto& r : rows) x.I = std::max<int>(x.I, (int)r.size() / 2);
  x.I = std::min(x.I, SPANATTN_MAX_INTERVALS);
  x.iv.assign((size_t)c.b * x.I * 2, -7);  // junk beyond n_intervals must be ignored
  x.n_iv.resize(c.b);
  for (int b = 0; b < c.b; ++b) {
    const int cnt = std::min<int>((int)rows[b].size() / 2, x.I);
    x.n_iv[b] = cnt;
    for (int i = 0; i < cnt; ++i) {
      x.iv[((size_t)b * x.I + i) * 2] = rows[b][2 * i];
      x.iv[((size_t)b * x.I + i) * 2 + 1] = rows[b][2 * i + 1];
      x.kept_tokens += rows[b][2 * i + 1] - rows[b][2 * i];
    }
  }
  return x;
}

static std::vector<float> reference(const Case& x, float scale) {
  const Config& c = x.c;
  const int g = c.hq / c.hkv;
  std::vector<float> out((size_t)c.b * c.hq * c.d, 0.f), sc;
  for (int b = 0; b < c.b; ++b)
    for (int h = 0; h < c.hq; ++h) {
      const int hk = h / g;
      std::vector<int> pos;
      for (int i = 0; i < x.n_iv[b]; ++i)
        for (int p = x.iv[((size_t)b * x.I + i) * 2]; p < x.iv[((size_t)b * x.I + i) * 2 + 1]; ++p)
          pos.push_back(p);
      if (pos.empty()) continue;
      sc.assign(pos.size(), 0.f);
      float mx = -INFINITY;
      for (size_t t = 0; t < pos.size(); ++t) {
        const size_t row = (((size_t)b * c.hkv + hk) * c.n + pos[t]) * c.d;
        float s = 0.f;
        for (int e = 0; e < c.d; ++e)
          s += from_bits(x.q[((size_t)b * c.hq + h) * c.d + e], c.fp16) * from_bits(x.k[row + e], c.fp16);
        sc[t] = s * scale;
        mx = fmaxf(mx, sc[t]);
      }
      double sum = 0.0;
      std::vector<double> o(c.d, 0.0);
      for (size_t t = 0; t < pos.size(); ++t) {
        const double w = exp((double)sc[t] - mx);
        sum += w;
        const size_t row = (((size_t)b * c.hkv + hk) * c.n + pos[t]) * c.d;
        for (int e = 0; e < c.d; ++e) o[e] += w * from_bits(x.v[row + e], c.fp16);
      }
      for (int e = 0; e < c.d; ++e) out[((size_t)b * c.hq + h) * c.d + e] = (float)(o[e] / sum);
    }
  return out;
}

struct Device {
  void *q, *k, *v, *out, *ws;
  int32_t *iv, *n_iv, *lens;
  size_t ws_bytes;
  void* plan;  // --planned: the plan buffer of spanattn_span_plan (ws then holds the partials alone)
  size_t plan_bytes;
};

// --planned: plan once with spanattn_span_plan, then attend twice from that plan (two layers of
// one decode step), as the engine's step_plan does
static bool g_planned = false;

template <typename V>
static void* upload(const std::vector<V>& h) {
  void* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, std::max<size_t>(h.size() * sizeof(V), 16)));
  if (!h.empty()) CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(V), cudaMemcpyHostToDevice));
  return d;
}

static Device to_device(const Case& x) {
  Device d;
  d.q = upload(x.q); d.k = upload(x.k); d.v = upload(x.v);
  d.iv = (int32_t*)upload(x.iv); d.n_iv = (int32_t*)upload(x.n_iv); d.lens = (int32_t*)upload(x.lens);
  CUDA_CHECK(cudaMalloc(&d.out, x.q.size() * 2));
  int splits = 0;
  const int dt = x.c.fp16 ? SPANATTN_FP16 : SPANATTN_BF16;
  d.plan = nullptr;
  d.plan_bytes = 0;
  const int st = g_planned
      ? spanattn_plan_sizes(x.c.b, x.c.hq, x.c.hkv, x.c.n, x.c.d, x.I, dt, 0, &splits, &d.ws_bytes, &d.plan_bytes)
      : spanattn_plan(x.c.b, x.c.hq, x.c.hkv, x.c.n, x.c.d, x.I, dt, 0, &splits, &d.ws_bytes);
  if (st != SPANATTN_OK) {
    fprintf(stderr, "plan: %s\n", spanattn_last_error());
    exit(2);
  }
  CUDA_CHECK(cudaMalloc(&d.ws, std::max<size_t>(d.ws_bytes, 16)));
  if (g_planned) CUDA_CHECK(cudaMalloc(&d.plan, std::max<size_t>(d.plan_bytes, 16)));
  return d;
}

static void release(Device& d) {
  for (void* p : {d.q, d.k, d.v, d.out, d.ws, d.plan, (void*)d.iv, (void*)d.n_iv, (void*)d.lens}) cudaFree(p);
}

static void launch(const Case& x, const Device& d, float scale) {
  const int dt = x.c.fp16 ? SPANATTN_FP16 : SPANATTN_BF16;
  if (g_planned) {
    int st = spanattn_span_plan(d.iv, d.n_iv, d.lens, d.plan, d.plan_bytes, x.c.b, x.c.hq, x.c.hkv, x.c.n,
                                x.c.d, x.I, dt, nullptr);
    for (int layer = 0; layer < 2 && st == SPANATTN_OK; ++layer)
      st = spanattn_span_decode_planned(d.q, d.k, d.v, d.iv, d.n_iv, d.lens, d.plan, d.plan_bytes, d.out, d.ws,
                                        d.ws_bytes, x.c.b, x.c.hq, x.c.hkv, x.c.n, x.c.d, x.I, scale, dt, nullptr);
    if (st != SPANATTN_OK) {
      fprintf(stderr, "span_decode (planned): %s\n", spanattn_last_error());
      exit(2);
    }
    return;
  }
  const int st = spanattn_span_decode(d.q, d.k, d.v, d.iv, d.n_iv, d.lens, d.out, d.ws, d.ws_bytes,
                                      x.c.b, x.c.hq, x.c.hkv, x.c.n, x.c.d, x.I, scale,
                                      x.c.fp16 ? SPANATTN_FP16 : SPANATTN_BF16, nullptr);
  if (st != SPANATTN_OK) {
    fprintf(stderr, "span_decode: %s\n", spanattn_last_error());
    exit(2);
  }
}

static bool check(const Config& c, uint64_t seed, bool time_it, int iters) {
  const Case x = make_case(c, seed);
  const float scale = 1.f / sqrtf((float)c.d);
  Device d = to_device(x);
  CUDA_CHECK(cudaMemset(d.out, 0xff, x.q.size() * 2));
  CUDA_CHECK(cudaMemset(d.ws, 0xff, std::max<size_t>(d.ws_bytes, 16)));
  if (d.plan) CUDA_CHECK(cudaMemset(d.plan, 0xff, std::max<size_t>(d.plan_bytes, 16)));
  launch(x, d, scale);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> got(x.q.size());
  CUDA_CHECK(cudaMemcpy(got.data(), d.out, got.size() * 2, cudaMemcpyDeviceToHost));
  const std::vector<float> ref = reference(x, scale);
  float ref_max = 0.f, err = 0.f;
  long first_bad = -1;
  for (size_t i = 0; i < ref.size(); ++i) ref_max = fmaxf(ref_max, fabsf(ref[i]));
  const float ulp = c.fp16 ? ldexpf(1.f, -10) : ldexpf(1.f, -7);
  const float tol = 2.f * ulp * fmaxf(ref_max, 1e-3f);
  for (size_t i = 0; i < ref.size(); ++i) {
    const float o = from_bits(got[i], c.fp16), e = fabsf(o - ref[i]);
    if (!(e <= tol) && first_bad < 0) first_bad = (long)i;  // NaN counts as bad
    err = isnan(e) ? INFINITY : fmaxf(err, e);
  }
  int splits = 0;
  size_t ws = 0;
  spanattn_plan(c.b, c.hq, c.hkv, c.n, c.d, x.I, c.fp16, 0, &splits, &ws);
  printf("%-5s B=%-3d Hq=%-2d Hkv=%-2d N=%-6d D=%-3d I=%-5d kept=%-9lld splits=%-3d max_err=%.3e tol=%.3e %s",
         c.fp16 ? "fp16" : "bf16", c.b, c.hq, c.hkv, c.n, c.d, x.I, x.kept_tokens, splits, err, tol,
         first_bad < 0 ? "OK" : "FAIL");
  if (first_bad >= 0) {
    const long e = first_bad % c.d, h = (first_bad / c.d) % c.hq, b = first_bad / c.d / c.hq;
    printf("  first mismatch b=%ld h=%ld d=%ld got=%g want=%g", b, h, e,
           from_bits(got[first_bad], c.fp16), ref[first_bad]);
  }
  if (time_it && first_bad < 0) {
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    for (int i = 0; i < 5; ++i) launch(x, d, scale);
    std::vector<float> ms(iters);
    for (int i = 0; i < iters; ++i) {
      CUDA_CHECK(cudaEventRecord(t0));
      launch(x, d, scale);
      CUDA_CHECK(cudaEventRecord(t1));
      CUDA_CHECK(cudaEventSynchronize(t1));
      CUDA_CHECK(cudaEventElapsedTime(&ms[i], t0, t1));
    }
    std::sort(ms.begin(), ms.end());
    const double bytes = (double)x.kept_tokens * c.hkv * c.d * 2 * 2 + 2.0 * x.q.size() * 2;
    printf("  median %.4f ms  %.0f GB/s", ms[iters / 2], bytes / (ms[iters / 2] * 1e-3) / 1e9);
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
  }
  printf("\n");
  release(d);
  return first_bad < 0;
}

int main(int argc, char** argv) {
  bool check_only = false, small = false;
  int iters = 50;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--check-only")) check_only = true;
    else if (!strcmp(argv[i], "--small")) small = true;
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--planned")) g_planned = true;  // timings then cover one plan and two attends
    else if (!strcmp(argv[i], "--fused")) {  // the balanced schedule's fused combine
      if (spanattn_set_combine(1) != SPANATTN_OK) return 2;
    }
    else if (!strcmp(argv[i], "--balanced") || !strcmp(argv[i], "--rows")) {  // work schedule (span_schedule.h)
      if (spanattn_set_schedule(strcmp(argv[i], "--balanced") == 0 ? 1 : 0) != SPANATTN_OK) return 2;
    } else {
      fprintf(stderr, "usage: harness [--check-only] [--small] [--iters N] [--rows | --balanced] [--planned] [--fused]\n");
      return 2;
    }
  }
  std::vector<Config> configs;
  if (small) {
    configs = {{3, 8, 2, 97, 128, 0.4f, 9, false}, {3, 6, 3, 130, 64, 0.5f, 5, true},
               {2, 24, 2, 300, 128, 0.3f, 17, false}};
  } else {
    configs = {{1, 32, 8, 1, 128, 1.f, 1, false},       {4, 32, 8, 97, 128, 0.3f, 7, false},
               {3, 8, 8, 1025, 64, 0.5f, 33, true},      {5, 28, 4, 1025, 128, 0.2f, 64, false},
               {2, 16, 1, 2049, 64, 0.25f, 128, false},  {4, 48, 4, 777, 128, 0.6f, 3, true},
               {1, 32, 8, 32768, 128, 0.03f, 512, false}, {8, 32, 8, 8192, 128, 0.25f, 512, false},
               {32, 32, 8, 2048, 128, 1.f, 2048, false}};
  }
  bool ok = true;
  uint64_t seed = 1;
  for (const Config& c : configs) ok &= check(c, seed++, !check_only, iters);
  printf("%s\n", ok ? "ALL OK" : "SOME FAILED");
  return ok ? 0 : 1;
}
