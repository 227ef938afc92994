// fuzz_guard: slirp::FragmentGuard against the reference model of libslirp 4.7's reassembly queues
// (tests/unit/reassembly_model.hpp). The input is a sequence of 4-byte steps, each one IPv4
// fragment (or plain datagram) sent through the guard into the model, after a step of the clock;
// the run aborts if the model ever sees a frame that would crash libslirp 4.7.0 (a last fragment
// reaching ip_reass() with no queue for its datagram).
//
//   byte 0  bits 0-2: datagram id (8 ids, few enough to collide), bit 3: second source address,
//           bits 4-5: kind (0-2 a fragment as below; 3: a flood, table size + 1 first fragments
//           of fresh datagrams, to fill the guard's table of kTable), bits 6-7: clock step
//           (0, 1 ms, 10 s, 29 s: around the guard's 20/30/32 s bounds and libslirp's 30 s)
//   byte 1  bit 7: MF, bit 6: the reserved flag bit, bits 0-3: offset in 8-byte units
//   byte 2  payload length in 8-byte units (0-3) in bits 0-1
//   byte 3  unused (room for the fuzzer to mutate without effect)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "reassembly_model.hpp"
#include "slirp/fragment_guard.hpp"

using slirpnetd::slirp::FragmentGuard;
using slirpnetd::testing::frame;
using slirpnetd::testing::ReassemblyModel;

// The guard's table: small, so that a flood costs a few frames; the logic is the same at 4096.
constexpr size_t kTable = 16;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FragmentGuard guard(kTable);
  ReassemblyModel model;
  int64_t now = 0;
  uint16_t fresh_id = 1000;  // ids for floods: never one of the 8 above
  const auto in = [&](const std::vector<uint8_t>& f) {
    guard.input(f.data(), f.size(), now, [&](const uint8_t* p, size_t n) { model.input(p, n, now); });
  };
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint8_t a = data[i], b = data[i + 1], c = data[i + 2];
    static constexpr int64_t kSteps[4] = {0, 1, 10000, 29000};
    now += kSteps[a >> 6];
    const uint8_t src = (a & 0x08) ? 101 : 100;
    if (((a >> 4) & 3) == 3) {
      for (size_t k = 0; k <= kTable; ++k)
        in(frame(fresh_id++, slirpnetd::testing::kMF, 8, src));
      continue;
    }
    uint16_t flags_off = static_cast<uint16_t>(b & 0x0f);
    if (b & 0x80) flags_off |= slirpnetd::testing::kMF;
    if (b & 0x40) flags_off |= slirpnetd::testing::kReserved;
    in(frame(static_cast<uint16_t>(a & 7), flags_off, size_t{c & 3u} * 8, src));
    if (model.crashes) {
      std::fprintf(stderr, "fuzz_guard: a last fragment reached libslirp with no queue (step %zu)\n", i / 4);
      std::abort();
    }
  }
  // The guard's bounds hold too.
  if (guard.held() > FragmentGuard::kMaxHeld || guard.tracked() > kTable) std::abort();
  return 0;
}
