// Fused CPU kernel of the NG-GNN dense-block message step (see film_message_stats.py for the formula).
//
// For one weight block of B graphs, edges (t, s) on a [T, S] grid with states e [B, T, S, H_e], C = 2H
// message channels per edge and the FiLM product film = e · Wᵀ = [γ | β] ([B, T, S, 4H]) with its bias
// b = [b_γ | b_β]:
//     a = (γ + b_γ) ⊙ (x_src[s] + x_dst[t]) + (β + b_β),   m = SiLU(a)
//     into[b, t]   = [mean, min, max, std] over s of m[..., :H]     (forward messages, per receiver t)
//     out_of[b, s] = [mean, min, max, std] over t of m[..., H:]     (backward messages, per sender s)
// in one pass over the FiLM product (float32 or bfloat16; computed here a few graphs at a time by ATen's
// matrix product into a buffer that stays in cache, see `FilmChunks`; its bias is added in the message
// loop, which spares the product a broadcast copy of it), accumulating in float32; and the backward pass,
// which recomputes the product and m instead of storing them. One OpenMP task per graph b: its
// accumulators fit in L2 and no two threads write the same output.
//
// Bit-exact recomputation matters: the min/max gradient goes to the elements equal to the stored min/max,
// so forward and backward evaluate m with the same code (`pre_activation` and `sigmoid`: an explicit FMA
// and our own exp, the same in vector and scalar loops; built without -ffast-math, -ffp-contract=off).

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// std = sqrt(max(E[m²] - E[m]², 0) + eps) - sqrt(eps): `std_from_moments` in film_message_stats.py (the
// tests compare the two)
constexpr float kEps = 1e-5f;

inline float load(const float* p, int64_t i) { return p[i]; }

inline float load(const at::BFloat16* p, int64_t i) {
  uint32_t bits = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float* p, int64_t i, float v) { p[i] = v; }

inline void store(at::BFloat16* p, int64_t i, float v) {  // round to nearest even, as torch's cast
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(bits >> 16);
}

// exp(x) for x in float: 2^n · P(r), r = x - n ln2 in [-ln2/2, ln2/2], degree-6 Taylor polynomial
// (≤ 2 ulp). Plain arithmetic, so GCC vectorises it and scalar remainders give the same bits.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
  float n = std::fma(x, 1.44269504088896341f, shifter) - shifter;
  float r = std::fma(n, -0.693145751953125f, x);  // ln2 split in two for an exact product
  r = std::fma(n, -1.428606765330187045e-06f, r);
  float p = 1.0f / 720.0f;
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

struct Stats {  // running reductions over one axis for H channels
  std::vector<float> sum, sq, mn, mx, nmn, nmx;
  explicit Stats(int64_t n)
      : sum(n, 0.f), sq(n, 0.f), mn(n, INFINITY), mx(n, -INFINITY), nmn(n, 0.f), nmx(n, 0.f) {}
  template <bool kTies>
  void reset() {  // the tie counts only where they are kept (training)
    std::fill(sum.begin(), sum.end(), 0.f);
    std::fill(sq.begin(), sq.end(), 0.f);
    std::fill(mn.begin(), mn.end(), INFINITY);
    std::fill(mx.begin(), mx.end(), -INFINITY);
    if constexpr (kTies) {
      std::fill(nmn.begin(), nmn.end(), 0.f);
      std::fill(nmx.begin(), nmx.end(), 0.f);
    }
  }
};

// Add messages m[0..H) to the accumulators at offset o; the min/max keep a count of ties, since autograd
// splits their gradient evenly between equal elements.
template <bool kTies>
inline void accumulate(Stats& st, int64_t o, const float* __restrict m, int64_t h) {
  float* __restrict sum = st.sum.data() + o;
  float* __restrict sq = st.sq.data() + o;
  float* __restrict mn = st.mn.data() + o;
  float* __restrict mx = st.mx.data() + o;
  float* __restrict nmn = st.nmn.data() + o;
  float* __restrict nmx = st.nmx.data() + o;
#pragma omp simd
  for (int64_t c = 0; c < h; ++c) {
    const float v = m[c];
    sum[c] += v;
    sq[c] = std::fma(v, v, sq[c]);
    if constexpr (kTies) {
      nmn[c] = v < mn[c] ? 1.f : (v == mn[c] ? nmn[c] + 1.f : nmn[c]);
      nmx[c] = v > mx[c] ? 1.f : (v == mx[c] ? nmx[c] + 1.f : nmx[c]);
    }
    mn[c] = v < mn[c] ? v : mn[c];
    mx[c] = v > mx[c] ? v : mx[c];
  }
}

// Write [mean, min, max, std] (out, 4H) and [ties at min, ties at max, d std / d (m_i - mean)] (aux, 3H).
template <bool kTies>
inline void finish(const Stats& st, int64_t o, int64_t h, float n, float* __restrict out, float* __restrict aux) {
  const float root_eps = std::sqrt(kEps);
  const float* __restrict sum = st.sum.data() + o;
  const float* __restrict sq = st.sq.data() + o;
#pragma omp simd
  for (int64_t c = 0; c < h; ++c) {
    const float mean = sum[c] / n, var = sq[c] / n - mean * mean;
    const float root = std::sqrt((var > 0.f ? var : 0.f) + kEps);
    out[c] = mean;
    out[3 * h + c] = root - root_eps;
    // d std / d m_i = (m_i - mean) / (n · root) where clamp_min(0) passes the gradient (var ≥ 0)
    if constexpr (kTies) aux[2 * h + c] = var >= 0.f ? 1.f / (n * root) : 0.f;
  }
  std::memcpy(out + h, st.mn.data() + o, h * sizeof(float));
  std::memcpy(out + 2 * h, st.mx.data() + o, h * sizeof(float));
  if constexpr (kTies) {
    std::memcpy(aux, st.nmn.data() + o, h * sizeof(float));
    std::memcpy(aux + h, st.nmx.data() + o, h * sizeof(float));
  }
}

// γ + b_γ of channel c from the FiLM row f = [γ (2H) | β (2H)] and biases bias [4H]
template <typename T>
inline float film_scale(const T* f, const float* __restrict bias, int64_t c) {
  return load(f, c) + bias[c];
}

// a = (γ + b_γ)(x_src + x_dst) + (β + b_β) for channel c of 2H = c2, and σ(a): the one definition that the
// forward and backward passes share, so that they evaluate the messages bit for bit alike
template <typename T>
inline float pre_activation(const T* f, const float* __restrict bias, const float* __restrict xs,
                            const float* __restrict xt, int64_t c2, int64_t c) {
  return std::fma(film_scale(f, bias, c), xs[c] + xt[c], film_scale(f, bias, c2 + c));
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// m = SiLU(a) for the 2H channels of one edge; keeps a and σ(a) for the backward pass.
template <typename T>
inline void silu_parts(const T* f, const float* __restrict bias, const float* __restrict xs,
                       const float* __restrict xt, int64_t c2, float* __restrict a, float* __restrict sig,
                       float* __restrict m) {
#pragma omp simd
  for (int64_t c = 0; c < c2; ++c) {
    const float x = pre_activation(f, bias, xs, xt, c2, c);
    const float s = sigmoid(x);
    a[c] = x;
    sig[c] = s;
    m[c] = x * s;
  }
}

// The messages alone (the forward pass needs neither a nor σ(a)).
template <typename T>
inline void silu_messages(const T* f, const float* __restrict bias, const float* __restrict xs,
                          const float* __restrict xt, int64_t c2, float* __restrict m) {
#pragma omp simd
  for (int64_t c = 0; c < c2; ++c) {
    const float x = pre_activation(f, bias, xs, xt, c2, c);
    m[c] = x * sigmoid(x);
  }
}

// With kTies (training) also the tie counts and the std-gradient factor in *_aux; without (inference) those
// are neither counted nor written.
template <bool kTies, typename T>
void forward_kernel(const T* film, const float* bias, const float* xs, const float* xt, float* into, float* out_of,
                    float* into_aux, float* out_of_aux, int64_t B, int64_t Tn, int64_t S, int64_t H) {
  const int64_t C = 2 * H;
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Stats row(H), col(S * H);
    std::vector<float> m(C);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      col.template reset<kTies>();
      for (int64_t t = 0; t < Tn; ++t) {
        row.template reset<kTies>();
        const float* xt_bt = xt + (b * Tn + t) * C;
        for (int64_t s = 0; s < S; ++s) {
          silu_messages(film + ((b * Tn + t) * S + s) * 2 * C, bias, xs + (b * S + s) * C, xt_bt, C, m.data());
          accumulate<kTies>(row, 0, m.data(), H);
          accumulate<kTies>(col, s * H, m.data() + H, H);
        }
        finish<kTies>(row, 0, H, static_cast<float>(S), into + (b * Tn + t) * 4 * H,
                      kTies ? into_aux + (b * Tn + t) * 3 * H : nullptr);
      }
      for (int64_t s = 0; s < S; ++s)
        finish<kTies>(col, s * H, H, static_cast<float>(Tn), out_of + (b * S + s) * 4 * H,
                      kTies ? out_of_aux + (b * S + s) * 3 * H : nullptr);
    }
  }
}

// Per-channel coefficients of dL/dm = k_mean + k_min·[m = min] + k_max·[m = max] + k_std·(m - mean).
struct Coefficients {
  std::vector<float> mean, mn, mx, k_mean, k_min, k_max, k_std;
  explicit Coefficients(int64_t n) : mean(n), mn(n), mx(n), k_mean(n), k_min(n), k_max(n), k_std(n) {}
  void load_from(int64_t o, const float* __restrict stats, const float* __restrict aux,
                 const float* __restrict grad, int64_t h, float n) {
    std::memcpy(mean.data() + o, stats, h * sizeof(float));
    std::memcpy(mn.data() + o, stats + h, h * sizeof(float));
    std::memcpy(mx.data() + o, stats + 2 * h, h * sizeof(float));
    float* __restrict km = k_mean.data() + o;
    float* __restrict kn = k_min.data() + o;
    float* __restrict kx = k_max.data() + o;
    float* __restrict ks = k_std.data() + o;
#pragma omp simd
    for (int64_t c = 0; c < h; ++c) {
      km[c] = grad[c] / n;
      kn[c] = grad[h + c] / aux[c];
      kx[c] = grad[2 * h + c] / aux[h + c];
      ks[c] = grad[3 * h + c] * aux[2 * h + c];
    }
  }
};

// dL/dm for H messages m against statistics (mean, min, max) and coefficients at one row or column.
inline void message_gradient(const float* __restrict m, const Coefficients& k, int64_t o, int64_t h,
                             float* __restrict dm) {
  const float* __restrict mean = k.mean.data() + o;
  const float* __restrict mn = k.mn.data() + o;
  const float* __restrict mx = k.mx.data() + o;
  const float* __restrict km = k.k_mean.data() + o;
  const float* __restrict kn = k.k_min.data() + o;
  const float* __restrict kx = k.k_max.data() + o;
  const float* __restrict ks = k.k_std.data() + o;
#pragma omp simd
  for (int64_t c = 0; c < h; ++c) {
    const float v = m[c];
    dm[c] = km[c] + (v == mn[c] ? kn[c] : 0.f) + (v == mx[c] ? kx[c] : 0.f) + ks[c] * (v - mean[c]);
  }
}

template <typename T>
void backward_kernel(const T* film, const float* bias, const float* xs, const float* xt, const float* into,
                     const float* out_of, const float* into_aux, const float* out_of_aux, const float* g_into,
                     const float* g_out_of, T* d_film, float* d_bias, float* d_xs, float* d_xt, int64_t B,
                     int64_t Tn, int64_t S, int64_t H) {
  const int64_t C = 2 * H;
#pragma omp parallel num_threads(at::get_num_threads())
  {
    Coefficients row(H), col(S * H);
    std::vector<float> a(C), sig(C), m(C), dm(C);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t o = (b * S + s);
        col.load_from(s * H, out_of + o * 4 * H, out_of_aux + o * 3 * H, g_out_of + o * 4 * H, H,
                      static_cast<float>(Tn));
      }
      float* dxs_b = d_xs + b * S * C;
      std::fill(dxs_b, dxs_b + S * C, 0.f);
      float* __restrict db = d_bias + b * 2 * C;  // bias gradients: per graph here, summed by the caller
      std::fill(db, db + 2 * C, 0.f);
      for (int64_t t = 0; t < Tn; ++t) {
        const int64_t o = b * Tn + t;
        row.load_from(0, into + o * 4 * H, into_aux + o * 3 * H, g_into + o * 4 * H, H, static_cast<float>(S));
        const float* __restrict xt_bt = xt + o * C;
        float* __restrict dxt_bt = d_xt + o * C;
        std::fill(dxt_bt, dxt_bt + C, 0.f);
        for (int64_t s = 0; s < S; ++s) {
          const int64_t off = (o * S + s) * 2 * C;
          const float* __restrict xs_bs = xs + (b * S + s) * C;
          silu_parts(film + off, bias, xs_bs, xt_bt, C, a.data(), sig.data(), m.data());
          message_gradient(m.data(), row, 0, H, dm.data());  // forward messages: statistics of row t
          message_gradient(m.data() + H, col, s * H, H, dm.data() + H);  // backward messages: column s
          float* __restrict dxs_bs = dxs_b + s * C;
          const float* __restrict av = a.data();
          const float* __restrict sv = sig.data();
          const float* __restrict dmv = dm.data();
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const float s_ = sv[c];
            const float da = dmv[c] * s_ * (1.0f + av[c] * (1.0f - s_));  // SiLU'(a) = σ(a)(1 + a(1 - σ(a)))
            const float gv = film_scale(film + off, bias, c);
            const float dg = da * (xs_bs[c] + xt_bt[c]);
            store(d_film + off, c, dg);
            store(d_film + off, C + c, da);
            db[c] += dg;
            db[C + c] += da;
            dxs_bs[c] += da * gv;
            dxt_bt[c] += da * gv;
          }
        }
      }
    }
  }
}

void check(const torch::Tensor& e, const torch::Tensor& weight, const torch::Tensor& xs, const torch::Tensor& xt,
           const torch::Tensor& bias) {
  TORCH_CHECK(e.dim() == 4, "edge states must be [B, T, S, H_e]");
  TORCH_CHECK(e.scalar_type() == torch::kFloat || e.scalar_type() == torch::kBFloat16,
              "edge states must be float32 or bfloat16");
  TORCH_CHECK(weight.scalar_type() == e.scalar_type(), "the FiLM weight must have the edge states' dtype");
  TORCH_CHECK(e.device().is_cpu() && weight.device().is_cpu(), "the fused kernel runs on the CPU");
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == e.size(3) && weight.size(0) % 4 == 0,
              "the FiLM weight must be [4H, H_e]");
  const int64_t c = weight.size(0) / 2;
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "bias must be [4H]");
  TORCH_CHECK(xs.dim() == 3 && xs.size(0) == e.size(0) && xs.size(1) == e.size(2) && xs.size(2) == c,
              "at_source must be [B, S, 2H]");
  TORCH_CHECK(xt.dim() == 3 && xt.size(0) == e.size(0) && xt.size(1) == e.size(1) && xt.size(2) == c,
              "at_target must be [B, T, 2H]");
}

torch::Tensor as_float(const torch::Tensor& x) { return x.to(torch::kFloat).contiguous(); }

template <typename F>
void dispatch(const torch::Tensor& e, F&& body) {  // float32 or bfloat16 (see `check`)
  if (e.scalar_type() == torch::kBFloat16)
    body(at::BFloat16());
  else
    body(0.0f);
}

// The FiLM product is computed here, a few graphs at a time, into a buffer that stays in cache: written
// whole (34 MB per layer for 64 SIRENs) it went to memory and back, and training kept it for the backward
// pass. Chunks of a few MB (`chunk_bytes`, CHUNK_BYTES in the Python module) keep the product efficient;
// each has at least one graph per thread.
int64_t graphs_per_chunk(int64_t B, int64_t bytes_per_graph, int64_t chunk_bytes) {
  const int64_t target = chunk_bytes / std::max<int64_t>(bytes_per_graph, 1);
  return std::min(B, std::max<int64_t>({target, int64_t{at::get_num_threads()}, 1}));
}

struct FilmChunks {  // film = e · weightᵀ for graphs [b0, b0 + nb), into one reused buffer
  torch::Tensor e, weight, buffer;
  int64_t B, rows_per_graph, chunk;
  FilmChunks(const torch::Tensor& e_, const torch::Tensor& weight_, int64_t chunk_bytes)
      : e(e_.contiguous()), weight(weight_.contiguous()), B(e_.size(0)), rows_per_graph(e_.size(1) * e_.size(2)) {
    chunk = graphs_per_chunk(B, rows_per_graph * weight.size(0) * weight.element_size(), chunk_bytes);
    buffer = torch::empty({chunk * rows_per_graph, weight.size(0)}, e.options());
  }
  torch::Tensor edges(int64_t b0, int64_t nb) const {  // [nb · T · S, H_e]
    return e.narrow(0, b0, nb).view({nb * rows_per_graph, e.size(3)});
  }
  torch::Tensor film(int64_t b0, int64_t nb) {  // [nb · T · S, 4H], valid until the next call
    auto out = buffer.narrow(0, 0, nb * rows_per_graph);
    at::mm_out(out, edges(b0, nb), weight.t());
    return out;
  }
};

}  // namespace

std::vector<torch::Tensor> forward(torch::Tensor e, torch::Tensor weight, torch::Tensor xs, torch::Tensor xt,
                                   torch::Tensor bias, bool for_backward, int64_t chunk_bytes) {
  check(e, weight, xs, xt, bias);
  at::NoGradGuard no_grad;  // called from a custom op's implementation: plain tensors in, plain tensors out
  const int64_t B = e.size(0), Tn = e.size(1), S = e.size(2), H = weight.size(0) / 4;
  auto f32 = e.options().dtype(torch::kFloat);
  auto into = torch::empty({B, Tn, 4 * H}, f32), out_of = torch::empty({B, S, 4 * H}, f32);
  const int64_t aux = for_backward ? 3 * H : 0;  // empty aux tensors when no backward pass will need them
  auto into_aux = torch::empty({B, Tn, aux}, f32), out_of_aux = torch::empty({B, S, aux}, f32);
  if (B == 0) return {into, out_of, into_aux, out_of_aux};  // (no chunks to loop over)
  FilmChunks chunks(e, weight, chunk_bytes);
  xs = as_float(xs);
  xt = as_float(xt);
  bias = as_float(bias);
  const int64_t C = 2 * H;
  dispatch(e, [&](auto zero) {
    using scalar_t = decltype(zero);
    for (int64_t b0 = 0; b0 < B; b0 += chunks.chunk) {
      const int64_t nb = std::min(chunks.chunk, B - b0);
      auto film = chunks.film(b0, nb);
      auto run = [&](auto kernel) {
        kernel(film.data_ptr<scalar_t>(), bias.data_ptr<float>(), xs.data_ptr<float>() + b0 * S * C,
               xt.data_ptr<float>() + b0 * Tn * C, into.data_ptr<float>() + b0 * Tn * 4 * H,
               out_of.data_ptr<float>() + b0 * S * 4 * H, into_aux.data_ptr<float>() + b0 * Tn * aux,
               out_of_aux.data_ptr<float>() + b0 * S * aux, nb, Tn, S, H);
      };
      if (for_backward)
        run(forward_kernel<true, scalar_t>);
      else
        run(forward_kernel<false, scalar_t>);
    }
  });
  return {into, out_of, into_aux, out_of_aux};
}

std::vector<torch::Tensor> backward(torch::Tensor e, torch::Tensor weight, torch::Tensor xs, torch::Tensor xt,
                                    torch::Tensor bias, torch::Tensor into, torch::Tensor out_of,
                                    torch::Tensor into_aux, torch::Tensor out_of_aux, torch::Tensor g_into,
                                    torch::Tensor g_out_of, int64_t chunk_bytes) {
  check(e, weight, xs, xt, bias);
  at::NoGradGuard no_grad;
  const int64_t B = e.size(0), Tn = e.size(1), S = e.size(2), H = weight.size(0) / 4, C = 2 * H;
  xs = as_float(xs);
  xt = as_float(xt);
  bias = as_float(bias);
  into = as_float(into);
  out_of = as_float(out_of);
  into_aux = as_float(into_aux);
  out_of_aux = as_float(out_of_aux);
  g_into = as_float(g_into);
  g_out_of = as_float(g_out_of);
  TORCH_CHECK(into.sizes() == torch::IntArrayRef({B, Tn, 4 * H}) && g_into.sizes() == into.sizes(),
              "into and its gradient must be [B, T, 4H]");
  TORCH_CHECK(out_of.sizes() == torch::IntArrayRef({B, S, 4 * H}) && g_out_of.sizes() == out_of.sizes(),
              "out_of and its gradient must be [B, S, 4H]");
  TORCH_CHECK(into_aux.size(2) == 3 * H && out_of_aux.size(2) == 3 * H,
              "the backward pass needs the training forward's tie counts");
  if (B == 0)
    return {torch::zeros_like(e), torch::zeros_like(weight), torch::zeros_like(xs), torch::zeros_like(xt),
            torch::zeros_like(bias)};
  // filled by the kernel; the bias gradient per graph, summed at the end
  auto d_xs = torch::empty({B, S, C}, xs.options()), d_xt = torch::empty({B, Tn, C}, xt.options());
  auto d_bias = torch::empty({B, 4 * H}, xs.options());
  FilmChunks chunks(e, weight, chunk_bytes);
  // the FiLM product's gradient for the whole batch: W's gradient is then one product over every edge,
  // rounded once (chunk by chunk, a bfloat16 product would round each chunk's share)
  auto d_film = torch::empty({B * chunks.rows_per_graph, weight.size(0)}, e.options());
  dispatch(e, [&](auto zero) {
    using scalar_t = decltype(zero);
    for (int64_t b0 = 0; b0 < B; b0 += chunks.chunk) {
      const int64_t nb = std::min(chunks.chunk, B - b0);
      auto film = chunks.film(b0, nb);  // recomputed: the same product, bit for bit, as in the forward pass
      backward_kernel(film.data_ptr<scalar_t>(), bias.data_ptr<float>(), xs.data_ptr<float>() + b0 * S * C,
                      xt.data_ptr<float>() + b0 * Tn * C, into.data_ptr<float>() + b0 * Tn * 4 * H,
                      out_of.data_ptr<float>() + b0 * S * 4 * H, into_aux.data_ptr<float>() + b0 * Tn * 3 * H,
                      out_of_aux.data_ptr<float>() + b0 * S * 3 * H, g_into.data_ptr<float>() + b0 * Tn * 4 * H,
                      g_out_of.data_ptr<float>() + b0 * S * 4 * H,
                      d_film.data_ptr<scalar_t>() + b0 * chunks.rows_per_graph * weight.size(0),
                      d_bias.data_ptr<float>() + b0 * 4 * H, d_xs.data_ptr<float>() + b0 * S * C,
                      d_xt.data_ptr<float>() + b0 * Tn * C, nb, Tn, S, H);
    }
  });
  auto edges = chunks.edges(0, B);
  auto d_e = at::mm(d_film, chunks.weight).view(e.sizes());  // [B, T, S, H_e]
  auto d_weight = at::mm(d_film.t(), edges);  // [4H, H_e]
  return {d_e, d_weight, d_xs, d_xt, d_bias.sum(0)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "FiLM product and message + [mean, min, max, std] over both block axes");
  m.def("backward", &backward, "gradients of `forward` for e, weight, at_source, at_target and bias");
}
