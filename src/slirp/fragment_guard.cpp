#include "slirp/fragment_guard.hpp"

#include <algorithm>
#include <cstring>

namespace slirpnetd::slirp {

namespace {
// The checks libslirp's ip_input() makes before ip_reass(): a frame failing them never reaches it.
bool reaches_reassembly(const uint8_t* ip, size_t n) {
  const size_t hl = (ip[0] & 0xfu) * 4u;
  const size_t total = size_t{ip[2]} << 8 | ip[3];
  if ((ip[0] >> 4) != 4 || hl < 20 || hl > n || total < hl || n < total || ip[8] == 0) return false;
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < hl; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}
}  // namespace

void FragmentGuard::expire(int64_t now_ms) {
  const size_t before = held_.size();
  held_.erase(std::remove_if(held_.begin(), held_.end(), [now_ms](const Held& h) { return h.until_ms <= now_ms; }),
              held_.end());
  dropped_ += before - held_.size();
  queues_.erase(std::remove_if(queues_.begin(), queues_.end(),
                               [now_ms](const Queue& q) { return now_ms - q.last_fed_ms > kGoneMs; }),
                queues_.end());
}

void FragmentGuard::forget(const Key& k) {
  queues_.erase(std::remove_if(queues_.begin(), queues_.end(), [&k](const Queue& q) { return q.key == k; }),
                queues_.end());
}

void FragmentGuard::input(const uint8_t* f, size_t len, int64_t now_ms, const Feed& feed) {
  if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 || (f[14] >> 4) != 4) return feed(f, len);
  const uint8_t* ip = f + 14;
  const uint16_t frag = static_cast<uint16_t>(ip[6] << 8 | ip[7]);
  const bool more = frag & 0x2000;
  const bool fragment = (frag & 0x3fff) != 0;
  // Non-fragments need no bookkeeping unless a tracked datagram could be affected: the hot path.
  if (!fragment && queues_.empty()) return feed(f, len);

  Key k{};
  std::memcpy(&k.src, ip + 12, 4);
  std::memcpy(&k.dst, ip + 16, 4);
  k.id = static_cast<uint16_t>(ip[4] << 8 | ip[5]);
  k.proto = ip[9];
  expire(now_ms);
  if (!fragment) {
    // libslirp 4.7's ip_input() frees the queue with the same key only for a frame whose flags
    // field has bits other than DF set, i.e. the reserved bit 0x8000 (ip_off & ~IP_DF, then no MF
    // and offset 0). A plain datagram with the same id leaves the queue alone, so must we.
    if ((frag & 0x8000) && reaches_reassembly(ip, len - 14)) forget(k);
    return feed(f, len);
  }
  auto q = std::find_if(queues_.begin(), queues_.end(), [&k](const Queue& x) { return x.key == k; });
  if (q != queues_.end() && q->certain && now_ms - q->created_ms >= kCertainMs) q->certain = false;

  if (!more) {  // a last fragment
    if (q == queues_.end() || !q->certain) {
      if (held_.size() == kMaxHeld) {
        held_.erase(held_.begin());
        ++dropped_;
      }
      held_.push_back({k, now_ms + kHoldMs, std::vector<uint8_t>(f, f + len)});
      return;
    }
    q->certain = false;  // it may complete the datagram, and libslirp then frees the queue
    q->last_fed_ms = now_ms;
    return feed(f, len);
  }

  // A non-last fragment: if it gets as far as ip_reass(), it finds or creates a queue.
  if (!reaches_reassembly(ip, len - 14)) return feed(f, len);
  if (q == queues_.end()) {
    if (queues_.size() == max_tracked_) {
      // Forgetting a tracked key would let a later fragment of it look like the first of a new
      // datagram while libslirp still holds its queue: drop this datagram's fragment instead.
      // Only the guest sends these, so only its own fragmented traffic can suffer.
      ++dropped_;
      return;
    }
    queues_.push_back({k, true, now_ms, now_ms});
    q = queues_.end() - 1;
  }
  q->last_fed_ms = now_ms;
  feed(f, len);
  if (!q->certain) return;  // an older queue may exist, holding a last fragment: wait for kGoneMs
  // One held last fragment of this datagram can go now.
  auto h = std::find_if(held_.begin(), held_.end(), [&k](const Held& x) { return x.key == k; });
  if (h == held_.end()) return;
  std::vector<uint8_t> frame = std::move(h->frame);
  held_.erase(h);
  q->certain = false;
  feed(frame.data(), frame.size());
}

}  // namespace slirpnetd::slirp
