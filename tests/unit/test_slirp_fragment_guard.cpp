// slirp::FragmentGuard against a reference model of libslirp 4.7's IPv4 reassembly queues
// (reassembly_model.hpp). tests/fuzz/fuzz_guard.cpp checks the same against random sequences.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "reassembly_model.hpp"
#include "slirp/fragment_guard.hpp"

using slirpnetd::slirp::FragmentGuard;

namespace {

using slirpnetd::testing::frame;
using slirpnetd::testing::kMF;
using slirpnetd::testing::kReserved;
using slirpnetd::testing::ReassemblyModel;

struct Run {
  FragmentGuard guard;
  ReassemblyModel model;
  int64_t now = 0;
  void in(const std::vector<uint8_t>& f) {
    guard.input(f.data(), f.size(), now, [this](const uint8_t* p, size_t n) { model.input(p, n, now); });
    now += 1;
  }
};

}  // namespace

TEST_CASE("FragmentGuard: a last fragment first is held until its datagram has a queue", "[slirp][fragments]") {
  Run r;
  r.in(frame(1, 2, 8));        // last fragment at offset 16, first seen: held
  CHECK(r.guard.held() == 1);
  r.in(frame(1, kMF | 0, 8));  // first fragment: a certain queue; the held one follows
  CHECK(r.guard.held() == 0);
  r.in(frame(1, kMF | 1, 8));  // middle: complete
  CHECK(r.model.crashes == 0);
  CHECK(r.model.queues.empty());
}

TEST_CASE("FragmentGuard: a plain datagram with the same id does not make the guard forget the queue",
          "[slirp][fragments]") {
  Run r;
  r.in(frame(7, kMF | 0, 8));  // first fragment: libslirp creates the queue
  r.in(frame(7, 2, 8));        // last fragment at 16: fed, the queue is "uncertain" now
  r.in(frame(7, 0, 8));        // plain datagram, same key: libslirp keeps the queue
  r.in(frame(7, 3, 8));        // a second last fragment, at 24
  r.in(frame(7, kMF | 1, 8));  // middle at 8: completes and frees the old queue
  CHECK(r.model.crashes == 0);
  // With the reserved bit libslirp does free the queue: the guard may start afresh.
  Run s;
  s.in(frame(8, kMF | 0, 8));
  s.in(frame(8, 2, 8));
  s.in(frame(8, kReserved, 8));
  CHECK(s.model.queues.empty());
  s.in(frame(8, 3, 8));        // held: no queue
  s.in(frame(8, kMF | 0, 8));  // a new queue: the held last fragment follows it
  CHECK(s.model.crashes == 0);
  CHECK(s.guard.held() == 0);
}

TEST_CASE("FragmentGuard: a full table does not forget a tracked datagram", "[slirp][fragments]") {
  Run r;
  r.in(frame(7, kMF | 0, 8));
  r.in(frame(7, 2, 8));  // fed: uncertain
  // FragmentGuard::kMaxTracked other datagrams (other ids) open queues.
  for (uint16_t id = 100; id < 100 + FragmentGuard::kMaxTracked; ++id) r.in(frame(id, kMF | 0, 0));
  CHECK(r.guard.tracked() == FragmentGuard::kMaxTracked);
  r.in(frame(7, 3, 8));        // a second last fragment of datagram 7
  r.in(frame(7, kMF | 1, 8));  // middle at 8: completes and frees the old queue
  CHECK(r.model.crashes == 0);
}
