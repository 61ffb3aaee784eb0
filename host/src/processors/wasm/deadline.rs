//! Plugin CPU deadlines without a clock thread. A call arms a timer on its own thread's CPU
//! clock; if the call outlives its budget, the timer's signal advances the engine's epoch, and
//! the store's epoch callback traps the call because the timer that fired was its own.
//!
//! Before this, a thread ticked the epoch every 10 ms while any call ran, and every call had
//! to wake it: two context switches a call, which on this VM cost more than the call's guest
//! code (S4: 4 switches a request against 2 for passthrough). Arming and disarming are two
//! syscalls on the calling thread and switch nothing. The clock is the thread's CPU time, which
//! is what `limits.timeout_ms` promises: a call preempted by other work is not charged for it.
//!
//! Linux only (`timer_create` with `SIGEV_THREAD_ID`), like the rest of the deployment.

#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::Duration;
use wasmtime::Engine;

/// A real-time signal: std, tokio and wasmtime use none of them (wasmtime's traps are
/// SIGSEGV, SIGBUS, SIGILL and SIGFPE), and the two glibc keeps for itself sit below SIGRTMIN.
fn expiry_signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

/// What the signal handler reaches through the timer's `sigev_value`.
struct Slot {
    /// The engine of the call in progress; null between calls.
    engine: AtomicPtr<Engine>,
    /// The current call's budget ran out.
    fired: AtomicBool,
}

/// One timer per thread that runs plugin calls, created on its first call.
struct ThreadTimer {
    id: libc::timer_t,
    slot: Box<Slot>,
}

impl ThreadTimer {
    fn create() -> std::io::Result<ThreadTimer> {
        install_handler();
        let slot = Box::new(Slot {
            engine: AtomicPtr::new(std::ptr::null_mut()),
            fired: AtomicBool::new(false),
        });
        // SAFETY: a zeroed sigevent is valid; the fields set are those SIGEV_THREAD_ID reads.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = expiry_signal();
        event.sigev_value = libc::sigval {
            sival_ptr: &*slot as *const Slot as *mut libc::c_void,
        };
        // SAFETY: gettid has no preconditions.
        event.sigev_notify_thread_id = unsafe { libc::gettid() };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `id` are valid for the call; the slot the event points to lives
        // in the returned value, which deletes the timer before the slot is freed.
        if unsafe { libc::timer_create(libc::CLOCK_THREAD_CPUTIME_ID, &mut event, &mut id) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(ThreadTimer { id, slot })
    }

    fn set(&self, budget: Duration) -> std::io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: budget.as_secs() as libc::time_t,
                tv_nsec: budget.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `self.id` is a live timer of this process; `spec` is valid for the call.
        if unsafe { libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: the timer is ours and deleted once. A signal it raised before this is
        // delivered before the call returns, while the slot still lives.
        unsafe { libc::timer_delete(self.id) };
    }
}

thread_local! {
    static TIMER: std::cell::OnceCell<Result<ThreadTimer, String>> = const { std::cell::OnceCell::new() };
    /// Whether a call armed on this thread is running: outside one, nothing traps.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

extern "C" fn on_expiry(_signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes the siginfo of a signal raised by one of our timers, whose
    // value is the address of its thread's slot; the slot outlives the timer. Only atomics
    // are touched, which is async-signal-safe.
    unsafe {
        let slot = &*((*info).si_value().sival_ptr as *const Slot);
        slot.fired.store(true, Ordering::SeqCst);
        let engine = slot.engine.load(Ordering::SeqCst);
        if !engine.is_null() {
            (*engine).increment_epoch();
        }
    }
}

fn install_handler() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction with an SA_SIGINFO handler and an empty mask is valid;
        // the handler only touches atomics. SA_RESTART keeps a host call's syscall from
        // failing with EINTR when a deadline passes inside it.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_expiry as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(expiry_signal(), &action, std::ptr::null_mut());
        }
    });
}

/// A plugin call's CPU budget, armed on the calling thread until it drops.
pub struct Armed {
    // Not Send: the timer is this thread's.
    _thread: std::marker::PhantomData<*const ()>,
}

/// Arms this thread's timer for `budget` of CPU time, the epoch of `engine` to be advanced when
/// it runs out. Give the store `set_epoch_deadline(1)` and [`on_epoch`] as its callback.
pub fn arm(engine: &Engine, budget: Duration) -> Result<Armed, String> {
    TIMER.with(|timer| {
        let timer = timer
            .get_or_init(|| ThreadTimer::create().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("cannot arm the plugin's CPU deadline: {e}"))?;
        timer.slot.fired.store(false, Ordering::SeqCst);
        timer
            .slot
            .engine
            .store(engine as *const Engine as *mut Engine, Ordering::SeqCst);
        // A zero budget would disarm; the shortest real one is a nanosecond.
        timer
            .set(budget.max(Duration::from_nanos(1)))
            .map_err(|e| format!("cannot arm the plugin's CPU deadline: {e}"))?;
        ARMED.set(true);
        Ok(Armed {
            _thread: std::marker::PhantomData,
        })
    })
}

impl Drop for Armed {
    fn drop(&mut self) {
        TIMER.with(|timer| {
            if let Some(Ok(timer)) = timer.get() {
                // Disarming cannot fail for a live timer; if it somehow did, the slot's null
                // engine makes a late expiry harmless.
                let _ = timer.set(Duration::ZERO);
                timer
                    .slot
                    .engine
                    .store(std::ptr::null_mut(), Ordering::SeqCst);
            }
        });
        ARMED.set(false);
    }
}

/// A store's epoch callback: traps when this thread's armed call ran out of budget. Any other
/// epoch change (another thread's call running out) is not this call's, so it continues.
pub fn on_epoch() -> wasmtime::Result<wasmtime::UpdateDeadline> {
    let fired = ARMED.get()
        && TIMER.with(|timer| {
            timer
                .get()
                .and_then(|t| t.as_ref().ok())
                .is_some_and(|t| t.slot.fired.load(Ordering::SeqCst))
        });
    if fired {
        Err(wasmtime::Trap::Interrupt.into())
    } else {
        Ok(wasmtime::UpdateDeadline::Continue(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn spin(cpu: Duration) {
        let start = Instant::now();
        while start.elapsed() < cpu {
            std::hint::black_box(0u64);
        }
    }

    // The timer counts this thread's CPU: it fires once the budget is spent, the call that
    // armed it then traps, and a disarmed timer never fires.
    #[test]
    fn fires_on_this_threads_cpu_time_only_while_armed() {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let fired = || {
            TIMER.with(|t| {
                t.get()
                    .unwrap()
                    .as_ref()
                    .unwrap()
                    .slot
                    .fired
                    .load(Ordering::SeqCst)
            })
        };
        {
            let _armed = arm(&engine, Duration::from_millis(5)).unwrap();
            spin(Duration::from_millis(40));
            assert!(fired(), "a 5 ms budget ran out after 40 ms of CPU");
            assert!(on_epoch().is_err(), "the call that ran out traps");
        }
        assert!(on_epoch().is_ok(), "outside a call nothing traps");
        {
            let _armed = arm(&engine, Duration::from_millis(200)).unwrap();
            spin(Duration::from_millis(5));
            assert!(!fired());
            assert!(
                on_epoch().is_ok(),
                "an epoch change that is not this call's continues"
            );
        }
        spin(Duration::from_millis(250));
        assert!(!fired(), "a disarmed timer stays quiet");
    }
}
