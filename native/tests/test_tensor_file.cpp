// native/io (tensor bytes in and out of safetensors files) on fresh random data in temp files:
// F32/BF16/F16 reads convert exactly (checked against core/dtype.h and against independent bit
// math), every bad range or size is a clear sppo::Error naming the file, and writes are atomic
// (no final file until complete, the temp file removed on failure, an old file left intact).
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "io/tensor_file.h"
#include "testing.h"

using sppo::DType;

namespace {

// A fresh temp folder per test, removed (with its files) at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sppo-tensor-file-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (!p) sppo::fail("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    for (const auto& f : files()) ::unlink((path + "/" + f).c_str());
    ::rmdir(path.c_str());
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) sppo::fail(path, ": test setup could not write");
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void put_u16(std::vector<unsigned char>& out, uint16_t v) {
  out.push_back(static_cast<unsigned char>(v & 0xff));
  out.push_back(static_cast<unsigned char>(v >> 8));
}

uint16_t get_u16(const std::vector<unsigned char>& b, size_t at) {
  return static_cast<uint16_t>(b[at] | (b[at + 1] << 8));
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Independent decoders: the value a 16-bit pattern denotes, from the format's definition.
double ref_f16(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
  return sign * std::ldexp(1.0 + mant / 1024.0, exp - 15);
}

double ref_bf16(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 7) & 0xff;
  const int mant = h & 0x7f;
  if (exp == 0xff) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -133);
  return sign * std::ldexp(1.0 + mant / 128.0, exp - 127);
}

// Independent encoder: nearest 16-bit value to x (ties to the even pattern), found by search over
// every non-negative finite pattern of the format plus infinity as the next step after the largest.
struct Nearest16 {
  std::vector<std::pair<double, uint16_t>> table;  // ascending magnitude
  Nearest16(double (*decode)(uint16_t), uint16_t inf_bits) {
    for (uint32_t h = 0; h < inf_bits; ++h) table.push_back({decode(static_cast<uint16_t>(h)), static_cast<uint16_t>(h)});
    // The step above the largest finite value is where rounding to infinity happens.
    const double last = table.back().first, prev = table[table.size() - 2].first;
    table.push_back({last + (last - prev), inf_bits});
  }
  uint16_t encode(float x) const {
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs(static_cast<double>(x));
    if (a >= table.back().first) return sign | table.back().second;
    auto hi = std::lower_bound(table.begin(), table.end(), std::make_pair(a, uint16_t{0}));
    if (hi->first == a) return sign | hi->second;
    auto lo = hi - 1;
    const double dl = a - lo->first, dh = hi->first - a;
    if (dl < dh) return sign | lo->second;
    if (dh < dl) return sign | hi->second;
    return sign | ((lo->second & 1) ? hi->second : lo->second);
  }
};

// Random 16-bit patterns that cover zeros, subnormals, normals, infinities and NaNs.
uint16_t random_pattern(sppo_test::Rng& rng) { return static_cast<uint16_t>(rng.integer(0, 0xffff)); }

// A file of `prefix` random bytes, then `values` as little-endian 16-bit patterns, then a tail.
std::string make_u16_file(const TempDir& dir, const std::string& name, sppo_test::Rng& rng, const std::vector<uint16_t>& values,
                          size_t prefix, size_t tail) {
  std::vector<unsigned char> bytes;
  for (size_t i = 0; i < prefix; ++i) bytes.push_back(static_cast<unsigned char>(rng.integer(0, 255)));
  for (uint16_t v : values) put_u16(bytes, v);
  for (size_t i = 0; i < tail; ++i) bytes.push_back(static_cast<unsigned char>(rng.integer(0, 255)));
  const std::string path = dir.file(name);
  write_bytes(path, bytes);
  return path;
}

}  // namespace

TEST(f32_read_is_bit_exact_at_random_offsets) {
  sppo_test::Rng rng(1);
  TempDir dir;
  const int64_t n = rng.integer(1, 5000);
  std::vector<float> values(static_cast<size_t>(n));
  for (auto& v : values) v = static_cast<float>(rng.normal(0, 10));
  values[0] = -0.0f;
  if (n > 2) values[1] = std::numeric_limits<float>::denorm_min();
  const size_t prefix = static_cast<size_t>(rng.integer(0, 37));  // unaligned on purpose
  std::vector<unsigned char> bytes(prefix, 0xAB);
  bytes.resize(prefix + values.size() * 4);
  std::memcpy(bytes.data() + prefix, values.data(), values.size() * 4);
  const std::string path = dir.file("f32.bin");
  write_bytes(path, bytes);
  std::vector<float> got(values.size(), 123.0f);
  sppo::io::read_tensor(path, prefix, values.size() * 4, DType::F32, got.data(), n, "w");
  for (size_t i = 0; i < values.size(); ++i) CHECK(float_bits(got[i]) == float_bits(values[i]));
}

TEST(f16_and_bf16_reads_convert_exactly) {
  sppo_test::Rng rng(2);
  TempDir dir;
  for (int pass = 0; pass < 4; ++pass) {
    const DType dt = pass % 2 ? DType::BF16 : DType::F16;
    // Small, then past the 8 MiB staging chunk (4 Mi values) so that a chunk boundary is crossed.
    const int64_t n = pass < 2 ? rng.integer(1, 20000) : rng.integer(4'194'305, 4'300'000);
    std::vector<uint16_t> pats(static_cast<size_t>(n));
    for (auto& p : pats) p = random_pattern(rng);
    const size_t prefix = static_cast<size_t>(rng.integer(0, 41));
    const std::string path = make_u16_file(dir, std::string(sppo::dtype_name(dt)) + ".bin", rng, pats, prefix, rng.integer(0, 9));
    std::vector<float> got(pats.size(), 7.0f);
    sppo::io::read_tensor(path, prefix, pats.size() * 2, dt, got.data(), n, "w");
    int64_t bad = 0;
    for (size_t i = 0; i < pats.size(); ++i) {
      const float lib = dt == DType::F16 ? sppo::f16_to_f32(pats[i]) : sppo::bf16_to_f32(pats[i]);
      const double ref = dt == DType::F16 ? ref_f16(pats[i]) : ref_bf16(pats[i]);
      const bool ok = std::isnan(ref) ? (std::isnan(got[i]) && std::isnan(lib))
                                      : (static_cast<double>(got[i]) == ref && float_bits(got[i]) == float_bits(lib) &&
                                         std::signbit(got[i]) == std::signbit(ref));
      if (!ok && bad++ < 5)
        std::printf("  %s pattern 0x%04x: got %.9g, dtype.h %.9g, reference %.9g\n", sppo::dtype_name(dt), pats[i], got[i],
                    lib, ref);
    }
    CHECK(bad == 0);
  }
}

TEST(every_f16_pattern_decodes_as_the_reference) {
  // Exhaustive over the 65536 patterns: subnormals and the exponent edges are where decoders slip.
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const double ref = ref_f16(static_cast<uint16_t>(h));
    const float got = sppo::f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      CHECK(std::isnan(got));
    } else if (!(static_cast<double>(got) == ref && std::signbit(got) == std::signbit(ref))) {
      std::printf("  f16 0x%04x: got %.9g, reference %.9g\n", h, got, ref);
      CHECK(false);
      return;
    }
  }
}

TEST(writes_round_to_nearest_even_as_an_independent_encoder) {
  sppo_test::Rng rng(3);
  TempDir dir;
  const Nearest16 f16(ref_f16, 0x7c00), bf16(ref_bf16, 0x7f80);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t n = rng.integer(1, 3000);
    std::vector<float> values(static_cast<size_t>(n));
    for (auto& v : values) {
      const double r = rng.uniform();
      if (r < 0.1) v = static_cast<float>(rng.normal(0, 1e-6));        // f16 subnormals
      else if (r < 0.15) v = static_cast<float>(rng.normal(0, 7e4));   // around f16 overflow
      else if (r < 0.17) v = static_cast<float>(rng.normal(0, 1e38));  // around bf16 overflow
      else v = static_cast<float>(rng.normal(0, 3));
    }
    // Exact ties between two f16 / bf16 values must go to the even one.
    if (n > 4) {
      values[0] = 1.0f + std::ldexp(1.0f, -11);              // f16 tie, rounds down to 1.0
      values[1] = 1.0f + 3 * std::ldexp(1.0f, -11);          // f16 tie, rounds up
      values[2] = 1.0f + std::ldexp(1.0f, -8);               // bf16 tie, rounds down
      values[3] = -(1.0f + 3 * std::ldexp(1.0f, -8));        // bf16 tie, rounds up
    }
    const std::string header = "{\"w\":{}}";
    const uint64_t esize = sppo::dtype_size(dt);
    const std::string path = dir.file(std::string("out-") + sppo::dtype_name(dt) + ".safetensors");
    sppo::io::write_safetensors(path, header, {{values.data(), n}}, dt, static_cast<uint64_t>(n) * esize);
    const auto bytes = read_bytes(path);
    CHECK(bytes.size() == 8 + header.size() + static_cast<size_t>(n) * esize);
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(bytes[static_cast<size_t>(i)]) << (8 * i);
    CHECK(len == header.size());
    CHECK(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(header.size())) == header);
    const size_t data = 8 + header.size();
    int64_t bad = 0;
    for (size_t i = 0; i < values.size() && bytes.size() == data + values.size() * esize; ++i) {
      bool ok;
      if (dt == DType::F32) {
        uint32_t u;
        std::memcpy(&u, bytes.data() + data + i * 4, 4);
        ok = u == float_bits(values[i]);
      } else {
        const uint16_t want = dt == DType::F16 ? f16.encode(values[i]) : bf16.encode(values[i]);
        ok = get_u16(bytes, data + i * 2) == want;
      }
      if (!ok && bad++ < 5) std::printf("  %s value %.9g written wrongly\n", sppo::dtype_name(dt), values[i]);
    }
    CHECK(bad == 0);
    // And reading the file back gives the rounded values (round trip through the file).
    std::vector<float> back(values.size());
    sppo::io::read_tensor(path, data, static_cast<uint64_t>(n) * esize, dt, back.data(), n, "w");
    for (size_t i = 0; i < values.size() && dt == DType::F32; ++i) CHECK(float_bits(back[i]) == float_bits(values[i]));
    for (size_t i = 0; i < values.size() && dt != DType::F32; ++i) {
      const double want = dt == DType::F16 ? ref_f16(f16.encode(values[i])) : ref_bf16(bf16.encode(values[i]));
      if (static_cast<double>(back[i]) != want) {
        CHECK_CLOSE(back[i], want, 0.0, 0.0);
        break;
      }
    }
  }
}

TEST(a_range_past_the_end_of_the_file_is_refused) {
  sppo_test::Rng rng(4);
  TempDir dir;
  const size_t n = static_cast<size_t>(rng.integer(4, 400));
  std::vector<uint16_t> pats(n);
  for (auto& p : pats) p = random_pattern(rng);
  const std::string path = make_u16_file(dir, "short.bin", rng, pats, 8, 0);
  const uint64_t size = 8 + n * 2;
  std::vector<float> dst(n + 64, 5.0f);
  // One element past the end, an offset beyond the end, and offsets that would wrap uint64.
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 10, n * 2, DType::BF16, dst.data(), static_cast<int64_t>(n), "w"), path.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 10, n * 2, DType::BF16, dst.data(), static_cast<int64_t>(n), "w"),
                    "outside the file");
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, size + rng.integer(1, 1000), 2, DType::F16, dst.data(), 1, "w"), path.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, std::numeric_limits<uint64_t>::max() - 1, 4, DType::F16, dst.data(), 2, "w"),
                    "outside the file");
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 4, std::numeric_limits<uint64_t>::max() - 3, DType::BF16, dst.data(),
                                          static_cast<int64_t>((std::numeric_limits<uint64_t>::max() - 3) / 2), "w"),
                    "outside the file");
  // The exact end is fine, and nothing past the requested count is touched.
  sppo::io::read_tensor(path, 8, n * 2, DType::BF16, dst.data(), static_cast<int64_t>(n), "w");
  for (size_t i = 0; i < n; ++i) CHECK(float_bits(dst[i]) == float_bits(sppo::bf16_to_f32(pats[i])) || std::isnan(dst[i]));
  CHECK(dst[n] == 5.0f);
}

TEST(a_size_that_does_not_match_dtype_times_count_is_refused) {
  sppo_test::Rng rng(5);
  TempDir dir;
  std::vector<uint16_t> pats(256);
  for (auto& p : pats) p = random_pattern(rng);
  const std::string path = make_u16_file(dir, "t.bin", rng, pats, 0, 0);
  std::vector<float> dst(512);
  const int64_t numel = rng.integer(2, 100);
  // Too few bytes, too many, an odd count for a 2-byte dtype, and F32 sized as if 2-byte.
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, numel * 2 - 2, DType::F16, dst.data(), numel, "layer.w"), path.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, numel * 2 + 2, DType::BF16, dst.data(), numel, "layer.w"), "layer.w");
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, numel * 2 + 1, DType::BF16, dst.data(), numel, "layer.w"), "bytes");
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, numel * 2, DType::F32, dst.data(), numel, "layer.w"), "F32");
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, 8, DType::F32, dst.data(), -2, "layer.w"), path.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, 8, DType::F64, dst.data(), 1, "layer.w"), "unsupported dtype");
  CHECK_THROWS_WITH(sppo::io::parse_tensor_dtype("I8", "m.safetensors: tensor 'x'"), "m.safetensors: tensor 'x'");
  CHECK(sppo::io::parse_tensor_dtype("BF16", "x") == DType::BF16);
}

TEST(a_truncated_file_is_refused) {
  sppo_test::Rng rng(6);
  TempDir dir;
  const size_t n = static_cast<size_t>(rng.integer(100, 2000));
  std::vector<float> values(n);
  for (auto& v : values) v = static_cast<float>(rng.normal());
  const std::string path = dir.file("model.safetensors");
  const std::string header = "{}      ";
  sppo::io::write_safetensors(path, header, {{values.data(), static_cast<int64_t>(n)}}, DType::F32, n * 4);
  const uint64_t full = 8 + header.size() + n * 4;
  const uint64_t cut = 8 + header.size() + static_cast<uint64_t>(rng.integer(0, static_cast<int64_t>(n * 4 - 1)));
  CHECK(::truncate(path.c_str(), static_cast<off_t>(cut)) == 0);
  std::vector<float> dst(n);
  CHECK(full > cut);
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 8 + header.size(), n * 4, DType::F32, dst.data(), static_cast<int64_t>(n), "w"),
                    path.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 8 + header.size(), n * 4, DType::F32, dst.data(), static_cast<int64_t>(n), "w"),
                    "truncated");
  // An empty file too.
  CHECK(::truncate(path.c_str(), 0) == 0);
  CHECK_THROWS_WITH(sppo::io::read_tensor(path, 0, 4, DType::F32, dst.data(), 1, "w"), path.c_str());
}

TEST(a_missing_file_or_a_folder_is_refused) {
  TempDir dir;
  std::vector<float> dst(4);
  const std::string missing = dir.file("no-such-shard.safetensors");
  CHECK_THROWS_WITH(sppo::io::read_tensor(missing, 0, 8, DType::F32, dst.data(), 2, "w"), missing.c_str());
  CHECK_THROWS_WITH(sppo::io::read_tensor(missing, 0, 8, DType::F32, dst.data(), 2, "w"), "cannot open");
  // A folder opens for reading on Linux but is not a file of bytes.
  CHECK_THROWS_WITH(sppo::io::read_tensor(dir.path, 0, 8, DType::F32, dst.data(), 2, "w"), dir.path.c_str());
}

TEST(writes_are_atomic_and_clean_up_on_failure) {
  sppo_test::Rng rng(7);
  TempDir dir;
  const int64_t n = rng.integer(20000, 40000);
  std::vector<float> values(static_cast<size_t>(n));
  for (auto& v : values) v = static_cast<float>(rng.normal());
  const std::string path = dir.file("model.safetensors");

  // Sizes that disagree with the header, a missing buffer, a non-object header: refused before
  // any file is created.
  CHECK_THROWS_WITH(sppo::io::write_safetensors(path, "{}", {{values.data(), n}}, DType::F32, n * 4 - 4), path.c_str());
  CHECK_THROWS_WITH(sppo::io::write_safetensors(path, "{}", {{nullptr, n}}, DType::BF16, n * 2), "no data");
  CHECK_THROWS_WITH(sppo::io::write_safetensors(path, "[]", {{values.data(), n}}, DType::F32, n * 4), "JSON object");
  CHECK_THROWS_WITH(sppo::io::write_safetensors(path, "{}", {{values.data(), n}}, DType::F64, n * 8), "cannot write dtype");
  CHECK(dir.files().empty());

  // A folder that does not exist: the error names the temp path, nothing appears.
  const std::string nowhere = dir.file("missing-dir/model.safetensors");
  CHECK_THROWS_WITH(sppo::io::write_safetensors(nowhere, "{}", {{values.data(), n}}, DType::F32, n * 4), nowhere.c_str());
  CHECK(dir.files().empty());

  // An old file stays intact when a new write fails midway. The write is made to fail with
  // EFBIG by a file-size limit well below the data size (SIGXFSZ ignored so write() reports it).
  const std::vector<unsigned char> old = {'o', 'l', 'd', '!', 1, 2, 3};
  write_bytes(path, old);
  struct rlimit saved {};
  CHECK(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* prev_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = static_cast<rlim_t>(rng.integer(16, 4096));
  CHECK(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  bool threw = false;
  std::string msg;
  try {
    sppo::io::write_safetensors(path, "{}", {{values.data(), n}}, DType::F32, n * 4);
  } catch (const sppo::Error& e) {
    threw = true;
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, prev_handler);
  CHECK(threw);
  CHECK(msg.find(path) != std::string::npos && msg.find("write failed") != std::string::npos);
  CHECK(read_bytes(path) == old);
  CHECK(dir.files() == std::vector<std::string>{"model.safetensors"});  // the temp file is gone

  // Renaming onto a folder fails after the data is written: the temp file is removed too.
  const std::string folder = dir.file("taken");
  CHECK(::mkdir(folder.c_str(), 0755) == 0);
  ::mkdir((folder + "/keep").c_str(), 0755);  // non-empty, so rename(2) cannot replace it
  CHECK_THROWS_WITH(sppo::io::write_safetensors(folder, "{}", {{values.data(), n}}, DType::BF16, n * 2), "cannot rename");
  CHECK((dir.files() == std::vector<std::string>{"model.safetensors", "taken"}));
  ::rmdir((folder + "/keep").c_str());
  ::rmdir(folder.c_str());

  // A successful write replaces the old file in one step and leaves no temp file behind.
  sppo::io::write_safetensors(path, "{}", {{values.data(), n}}, DType::F32, n * 4);
  const auto bytes = read_bytes(path);
  CHECK(bytes.size() == 10 + static_cast<size_t>(n) * 4);
  CHECK(bytes.size() < 10 || std::memcmp(bytes.data() + 10, values.data(), static_cast<size_t>(n) * 4) == 0);
  CHECK(dir.files() == std::vector<std::string>{"model.safetensors"});
}

TEST_MAIN()
