//! The heap in use, counted by the global allocator: what the memory limiter compares with its
//! limits, as the collector's compares Go's heap. Resident memory is not used for that because
//! an allocator keeps freed pages for reuse, so it stays high after a burst is delivered and a
//! limiter reading it would refuse long after memory was free again.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated and not yet freed, when [`Counting`] is the global allocator (any running
/// program has allocated something, so zero means it is not).
pub fn in_use() -> Option<usize> {
    Some(IN_USE.load(Ordering::Relaxed)).filter(|&n| n > 0)
}

/// Wraps an allocator and counts the bytes it has out. One relaxed atomic add per call.
pub struct Counting<A>(pub A);

// SAFETY: every call is passed to the wrapped allocator unchanged; only a counter is added.
#[allow(unsafe_code)]
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is the wrapped one's.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`, as the caller guarantees.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc` and `alloc`.
        let new = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            IN_USE.fetch_add(new_size, Ordering::Relaxed);
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}
