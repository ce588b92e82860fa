// FrameCache: where the coroutine frames of a request come from.
//
// Every request makes two frames (the framework's run_request and the
// handler's Task) and frees them when it is answered, and a loop thread does
// that hundreds of thousands of times a second in the same few sizes. A
// pipelined batch allocates all its frames before it frees any, which
// overflows malloc's small per-thread cache (7 blocks a size) and sends
// most of them down its slow path. So freed frames are kept here, per thread,
// in lists by size class, and the next request takes one back: a few
// instructions instead of a malloc and a free.
//
// A frame freed on another thread than the one that made it (the threaded
// worker's pool) simply joins that thread's lists. Each list is bounded;
// beyond it, and for big frames, memory goes back to operator delete. Under
// AddressSanitizer a cached frame is poisoned, so a coroutine that uses its
// frame after the end is still reported.
#pragma once

#include <sanitizer/asan_interface.h>  // without ASan its macros do nothing

#include <cstddef>
#include <cstdint>
#include <new>

namespace qilin::app::detail {

inline constexpr std::size_t kFrameGranule = 64;
inline constexpr std::size_t kFrameClasses = 32;  // frames up to 2 KiB
// Enough for a pipelined batch on every connection a turn touches; an
// occasional burst beyond it just pays malloc.
inline constexpr uint32_t kMaxFramesPerClass = 1024;

// One thread's freed frames: a list per size class, threaded through the frames.
struct FrameLists {
  struct FreeFrame {
    FreeFrame* next;
  };
  FreeFrame* head[kFrameClasses] = {};
  uint32_t length[kFrameClasses] = {};

  constexpr FrameLists() = default;
  FrameLists(const FrameLists&) = delete;
  FrameLists& operator=(const FrameLists&) = delete;
  ~FrameLists() {  // the thread ends: its cached frames go back to the heap
    for (std::size_t c = 0; c < kFrameClasses; ++c) {
      while (FreeFrame* frame = head[c]) {
        ASAN_UNPOISON_MEMORY_REGION(frame, (c + 1) * kFrameGranule);
        head[c] = frame->next;
        ::operator delete(frame, (c + 1) * kFrameGranule);
      }
    }
  }
};

inline thread_local FrameLists t_frame_lists;

class FrameCache {
 public:
  static void* allocate(std::size_t size) {
    const std::size_t size_class = class_of(size);
    if (size_class >= kFrameClasses) return ::operator new(size);
    const std::size_t class_size = (size_class + 1) * kFrameGranule;
    FrameLists& lists = t_frame_lists;
    if (FrameLists::FreeFrame* frame = lists.head[size_class]) {
      ASAN_UNPOISON_MEMORY_REGION(frame, class_size);
      lists.head[size_class] = frame->next;
      --lists.length[size_class];
      return frame;
    }
    return ::operator new(class_size);  // any frame of the class fits in it later
  }

  static void release(void* memory, std::size_t size) noexcept {
    const std::size_t size_class = class_of(size);
    if (size_class >= kFrameClasses) return ::operator delete(memory, size);
    const std::size_t class_size = (size_class + 1) * kFrameGranule;
    FrameLists& lists = t_frame_lists;
    if (lists.length[size_class] == kMaxFramesPerClass)
      return ::operator delete(memory, class_size);
    lists.head[size_class] = new (memory) FrameLists::FreeFrame{lists.head[size_class]};
    ++lists.length[size_class];
    // A coroutine that touches its frame after the end is still an ASan error.
    ASAN_POISON_MEMORY_REGION(memory, class_size);
  }

 private:
  // Sizes 1..64 are class 0, 65..128 class 1, and so on.
  static constexpr std::size_t class_of(std::size_t size) noexcept {
    return (size - 1) / kFrameGranule;
  }
};

}  // namespace qilin::app::detail
