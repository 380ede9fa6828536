// The row-major to column-major mapping of the CUDA matmul (kernels/cuda/matmul_colmajor.h), on
// the host: a naive column-major GEMM that reads its operands exactly as cuBLAS does (element
// (i, j) of a stored matrix at i + j * ld, op T swapping i and j), driven by the mapping over
// row-major buffers, must give the row-major product of matmul.h for every transpose form, with and without
// accumulation, on odd shapes. Also the descriptions cuBLAS validates: ld >= rows, op shapes chain.
#include <cstdint>
#include <vector>

#include "kernels/cuda/matmul_colmajor.h"
#include "testing.h"

using sppo::ColMajorGemm;
using sppo::ColMajorOperand;
using sppo::colmajor_gemm;

namespace {

// Element (i, j) of op(X) for a stored column-major X.
double at(const std::vector<double>& x, const ColMajorOperand& d, int64_t i, int64_t j) {
  return d.transpose ? x[j + i * d.ld] : x[i + j * d.ld];
}

// What cuBLAS computes: C = op(first) op(second) + beta C, column-major, sums in k order.
void colmajor_reference(const ColMajorGemm& g, const std::vector<double>& first, const std::vector<double>& second,
                        std::vector<double>& c, double beta) {
  for (int64_t j = 0; j < g.n; ++j)
    for (int64_t i = 0; i < g.m; ++i) {
      double s = 0;
      for (int64_t k = 0; k < g.k; ++k) s += at(first, g.first, i, k) * at(second, g.second, k, j);
      double& out = c[i + j * g.c.ld];
      out = s + (beta != 0 ? beta * out : 0.0);
    }
}

// matmul.h, row-major, straight from its definition.
std::vector<double> rowmajor_reference(const std::vector<double>& A, const std::vector<double>& B,
                                       const std::vector<double>& C0, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                                       bool acc) {
  std::vector<double> C(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = s + (acc ? C0[i * N + j] : 0.0);
    }
  return C;
}

// The stored matrix's extent: ld * cols elements, the last column only up to rows.
int64_t extent(const ColMajorOperand& d) { return d.ld * (d.cols - 1) + d.rows; }

}  // namespace

TEST(every_transpose_form_gives_the_row_major_product) {
  sppo_test::Rng rng(81);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {7, 3, 5}, {13, 1, 9}, {1, 17, 4}, {6, 6, 1}, {11, 29, 23}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int form = 0; form < 4; ++form) {
      const bool ta = form & 1, tb = form & 2;
      for (bool acc : {false, true}) {
        std::vector<double> A(M * K), B(K * N), C0(M * N);
        for (auto* v : {&A, &B, &C0})
          for (auto& x : *v) x = static_cast<double>(rng.integer(-8, 8));  // exact sums: compare with ==
        const ColMajorGemm g = colmajor_gemm(M, N, K, ta, tb);
        // Shapes as cuBLAS checks them: op(first) is m x k, op(second) is k x n, C is m x n.
        CHECK((g.first.transpose ? g.first.cols : g.first.rows) == g.m);
        CHECK((g.first.transpose ? g.first.rows : g.first.cols) == g.k);
        CHECK((g.second.transpose ? g.second.cols : g.second.rows) == g.k);
        CHECK((g.second.transpose ? g.second.rows : g.second.cols) == g.n);
        CHECK(g.c.rows == g.m && g.c.cols == g.n && !g.c.transpose);
        for (const ColMajorOperand* d : {&g.first, &g.second, &g.c}) CHECK(d->ld >= d->rows);
        // The descriptions cover exactly the row-major buffers.
        CHECK(extent(g.first) == K * N);
        CHECK(extent(g.second) == M * K);
        CHECK(extent(g.c) == M * N);
        std::vector<double> C = C0;
        colmajor_reference(g, B, A, C, acc ? 1.0 : 0.0);  // first = B, second = A
        const std::vector<double> want = rowmajor_reference(A, B, C0, M, N, K, ta, tb, acc);
        int bad = 0;
        for (int64_t i = 0; i < M * N; ++i) bad += C[i] != want[i];
        if (bad)
          std::printf("  %d wrong: M=%lld N=%lld K=%lld ta=%d tb=%d acc=%d\n", bad, (long long)M, (long long)N,
                      (long long)K, ta, tb, acc);
        CHECK(bad == 0);
      }
    }
  }
}

TEST(the_three_model_forms) {
  // x W^T (trans_b): cuBLAS op T on W stored [N, K]; dY W (none); dW += dY^T X (trans_a).
  const ColMajorGemm fwd = colmajor_gemm(8, 32, 16, false, true);
  CHECK(fwd.first.transpose && fwd.first.rows == 16 && fwd.first.cols == 32 && fwd.first.ld == 16);
  CHECK(!fwd.second.transpose && fwd.second.rows == 16 && fwd.second.cols == 8 && fwd.second.ld == 16);
  const ColMajorGemm dx = colmajor_gemm(8, 16, 32, false, false);
  CHECK(!dx.first.transpose && !dx.second.transpose && dx.m == 16 && dx.n == 8 && dx.k == 32);
  const ColMajorGemm dw = colmajor_gemm(32, 16, 8, true, false);
  CHECK(!dw.first.transpose && dw.second.transpose && dw.second.rows == 32 && dw.second.ld == 32);
}

TEST_MAIN()
