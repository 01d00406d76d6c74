//! The event loop alone: the simulator's [`EventQueue`] under a synthetic hold-model workload
//! (a fixed population of pending events; each pop schedules one successor at a pseudo-random
//! later time), and the same workload on a bare `std::collections::BinaryHeap` of
//! `Reverse((time, payload))` as the baseline. The ratio is the price of the queue's extras:
//! the sequence number that makes equal-time events FIFO (determinism) and the popped counter.

use crate::events::{EventQueue, SimTime};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A payload the size of the simulator's events (an enum with a few ids and a demand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Payload {
    pub id: u32,
    pub kind: u32,
    pub a: u64,
    pub b: u64,
}

/// xorshift64*: a fixed, dependency-free stream of delays shared by both loops.
fn next_delay(state: &mut u64) -> SimTime {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    // 1 µs .. ~1 s, skewed towards short delays like request service times.
    let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 44;
    1 + ((r * r) >> 20) as SimTime
}

#[derive(Debug, Clone, Copy)]
pub struct LoopResult {
    pub events: u64,
    pub seconds: f64,
    /// Sum of popped times: keeps the optimiser honest and checks both loops did the same work.
    pub checksum: i64,
}

fn payload(i: u64) -> Payload {
    Payload {
        id: i as u32,
        kind: (i % 5) as u32,
        a: i,
        b: i ^ 0x55,
    }
}

/// `events` pops on the simulator's queue with `pending` events in flight.
pub fn run_event_queue(pending: usize, events: u64) -> LoopResult {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    let mut q: EventQueue<Payload> = EventQueue::default();
    for i in 0..pending as u64 {
        q.push(next_delay(&mut rng), payload(i));
    }
    let mut checksum = 0i64;
    for _ in 0..events {
        let (t, p) = q.pop().expect("hold model never empties");
        checksum = checksum.wrapping_add(t);
        q.push(t + next_delay(&mut rng), payload(p.a + 1));
    }
    LoopResult {
        events: q.popped(),
        seconds: start.elapsed().as_secs_f64(),
        checksum,
    }
}

/// The baseline: the same pops and pushes on a bare `BinaryHeap<Reverse<(SimTime, Payload)>>`.
pub fn run_bare_heap(pending: usize, events: u64) -> LoopResult {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let start = Instant::now();
    let mut q: BinaryHeap<Reverse<(SimTime, Payload)>> = BinaryHeap::new();
    for i in 0..pending as u64 {
        q.push(Reverse((next_delay(&mut rng), payload(i))));
    }
    let mut checksum = 0i64;
    let mut popped = 0u64;
    for _ in 0..events {
        let Reverse((t, p)) = q.pop().expect("hold model never empties");
        popped += 1;
        checksum = checksum.wrapping_add(t);
        q.push(Reverse((t + next_delay(&mut rng), payload(p.a + 1))));
    }
    LoopResult {
        events: popped,
        seconds: start.elapsed().as_secs_f64(),
        checksum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_loops_pop_the_same_times() {
        let a = run_event_queue(100, 5_000);
        let b = run_bare_heap(100, 5_000);
        assert_eq!(a.events, b.events);
        assert_eq!(a.checksum, b.checksum);
    }
}
