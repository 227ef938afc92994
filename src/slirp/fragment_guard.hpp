#pragma once
// FragmentGuard: keeps one IPv4 frame shape away from libslirp 4.7.0, whose ip_reass() crashes
// (SIGBUS/SIGSEGV: the new queue head is read through a pointer of another type before the
// insert writes it) when the *first* fragment it sees of a datagram is the *last* one (MF clear,
// offset > 0). Found by tests/fuzz/fuzz_slirp; slirp4netns 1.2.0 dies on it too, so any root
// process in a container could kill the daemon with one frame.
//
// Such a frame is held back, not dropped (a last fragment may legitimately arrive first). The
// guard models libslirp's reassembly queues conservatively. A datagram's queue is *certain* when a
// valid non-last fragment created it (no fragment of that datagram was fed for kGoneMs before, so
// no older queue can exist) less than kCertainMs ago (libslirp frees queues 30 s after creation),
// and no last fragment was fed since (it may complete the datagram, and libslirp frees the queue).
// A last fragment is fed only while its queue is certain; otherwise it is held, and fed right
// after the fragment that makes the queue certain again, or dropped after kHoldMs. A key is
// forgotten only when libslirp surely freed its queue: kGoneMs after its last fragment, or at a
// non-fragment with the reserved flag bit (the only non-fragment ip_input() frees a queue for).
// With kMaxTracked keys tracked, the non-last fragments of new datagrams are dropped, never a
// tracked key forgotten.
// Owned by the slirp thread. tests/fuzz/fuzz_slirp feeds libslirp through this class.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace slirpnetd::slirp {

class FragmentGuard {
 public:
  static constexpr int64_t kHoldMs = 30000;
  static constexpr int64_t kCertainMs = 20000;  // < libslirp's 30 s queue lifetime
  static constexpr int64_t kGoneMs = 32000;     // > that lifetime: any queue is surely freed
  static constexpr size_t kMaxHeld = 64;
  static constexpr size_t kMaxTracked = 4096;

  using Feed = std::function<void(const uint8_t* frame, size_t len)>;

  // `max_tracked`: how many datagrams the table holds (kMaxTracked; tests/fuzz/fuzz_guard uses a
  // small table so that filling it costs a few frames, not thousands).
  explicit FragmentGuard(size_t max_tracked = kMaxTracked) : max_tracked_(max_tracked) {}

  // Feeds `frame` through `feed` now, or holds it; after a fragment that opens a datagram, also
  // feeds the frames held for it. `now_ms`: any monotonic clock in ms.
  void input(const uint8_t* frame, size_t len, int64_t now_ms, const Feed& feed);
  size_t held() const { return held_.size(); }
  size_t tracked() const { return queues_.size(); }
  uint64_t dropped() const { return dropped_; }

 private:
  struct Key {
    uint32_t src, dst;
    uint16_t id;
    uint8_t proto;
    bool operator==(const Key& o) const { return src == o.src && dst == o.dst && id == o.id && proto == o.proto; }
  };
  struct Queue {  // what we know of libslirp's reassembly queue for one datagram
    Key key;
    bool certain;        // it exists, and no last fragment went in
    int64_t created_ms;  // when it was created (if certain)
    int64_t last_fed_ms; // the last fragment of this datagram we fed
  };
  struct Held {
    Key key;
    int64_t until_ms;
    std::vector<uint8_t> frame;
  };
  void expire(int64_t now_ms);
  void forget(const Key& k);

  size_t max_tracked_;
  std::vector<Queue> queues_;
  std::vector<Held> held_;
  uint64_t dropped_ = 0;
};

}  // namespace slirpnetd::slirp
