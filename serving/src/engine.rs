//! One replica of an LLM server, run the way vLLM's V1 scheduler runs it: a waiting queue and a
//! running batch; each iteration spends a token budget on one decode token per running sequence
//! and (chunked) prefill of the rest, admits waiting requests while sequence slots, budget and
//! KV-cache blocks allow, and preempts the newest sequences (to be recomputed) when the cache
//! runs out.
//!
//! The engine is driven by events, never per token: between two changes of the batch (an
//! arrival, a prefill chunk completing, a sequence finishing, the cache filling) every iteration
//! is a decode of the same sequences whose context grows by one token each, so its time is a
//! line in the iteration number ([`IterationCost::decode_line`]) and a run of them sums in
//! closed form. The caller asks [`ReplicaEngine::next_event`] when to call back, and calls
//! [`ReplicaEngine::advance`] then; an arrival in the middle of such a run cuts it at the end of
//! the iteration in progress, as a real engine admits new work only between iterations.
//!
//! Times are microseconds as `f64` on the caller's clock.

use crate::cost::{DecodeLine, IterationCost, Work};
use std::collections::VecDeque;

/// The scheduler's limits (vLLM's engine arguments of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub max_num_seqs: u32,
    pub max_num_batched_tokens: u32,
    pub max_model_len: u32,
    pub block_size: u32,
    /// KV-cache blocks of `block_size` tokens (see [`kv_cache_blocks`]).
    pub kv_blocks: u64,
    pub chunked_prefill: bool,
}

/// Why a replica cannot be built: the weights leave no room for a KV cache.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{model} at tp={tp} does not fit on {gpu}: weights need {weights_gb:.1} GB per GPU, {usable_gb:.1} GB usable (memory × gpu_memory_utilization − {reserve_gb} GB activations) leaves no KV cache")]
pub struct DoesNotFit {
    pub model: String,
    pub gpu: String,
    pub tp: u32,
    pub weights_gb: f64,
    pub usable_gb: f64,
    pub reserve_gb: f64,
}

/// KV-cache blocks a replica gets, as vLLM sizes it: per GPU, memory × utilisation, less the
/// weights' share and the activation reserve, over the bytes a block holds on that GPU.
pub fn kv_cache_blocks(
    arch: &crate::ModelArch,
    dtype: crate::Dtype,
    gpu: &crate::Accelerator,
    tp: u32,
    gpu_memory_utilization: f64,
    activation_reserve_gb: f64,
    block_size: u32,
) -> Result<u64, DoesNotFit> {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    // "80 GB" parts hold 80 GiB.
    let usable = gpu.memory_gb * GIB * gpu_memory_utilization;
    let weights = arch.weight_bytes(dtype) / tp.max(1) as f64;
    let free = usable - weights - activation_reserve_gb * GIB;
    let per_block = arch.kv_bytes_per_token_per_gpu(dtype, tp.max(1)) * block_size as f64;
    let blocks = if free > 0.0 {
        (free / per_block).floor()
    } else {
        0.0
    };
    if blocks < 1.0 {
        return Err(DoesNotFit {
            model: arch.name.to_string(),
            gpu: gpu.name.clone(),
            tp,
            weights_gb: weights / 1e9,
            usable_gb: usable / 1e9,
            reserve_gb: activation_reserve_gb,
        });
    }
    Ok(blocks as u64)
}

/// A request handed to the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    pub id: u64,
    /// When it reached the engine, µs.
    pub arrival: f64,
    pub prompt: u32,
    pub output: u32,
    /// Leading prompt tokens whose KV blocks the prefix cache already holds (a system prompt
    /// shared with earlier requests): not computed again.
    pub cached_prefix: u32,
}

/// Why the engine refuses a request outright (vLLM answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("prompt + output = {tokens} tokens exceeds max_model_len {limit}")]
    TooLong { tokens: u32, limit: u32 },
    #[error(
        "a request of {tokens} tokens needs more KV cache than the replica has ({capacity} tokens)"
    )]
    ExceedsKvCache { tokens: u32, capacity: u64 },
    #[error("a request needs at least one prompt and one output token")]
    Empty,
}

/// A request the engine finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finished {
    pub id: u64,
    pub arrival: f64,
    /// End of the iteration that sampled its first output token.
    pub first_token: f64,
    pub end: f64,
    pub prompt: u32,
    pub output: u32,
    /// Times it was preempted and recomputed.
    pub preemptions: u32,
}

#[derive(Debug, Clone)]
struct Seq {
    id: u64,
    arrival: f64,
    prompt: u32,
    output: u32,
    generated: u32,
    /// Tokens whose keys and values are in the cache.
    computed: u32,
    first_token: Option<f64>,
    preemptions: u32,
}

impl Seq {
    /// Tokens to compute before the next sample: the whole prompt (plus what was generated,
    /// after a preemption) in prefill, 1 in decode.
    fn needs(&self) -> u32 {
        self.prompt + self.generated - self.computed
    }
}

#[derive(Debug, Clone)]
enum UnitKind {
    /// One iteration with the scheduled (running index, tokens) pairs.
    Step { plan: Vec<(u32, u32)> },
    /// `k` decode-only iterations of every running sequence: iteration j lasts
    /// `line.at(s0 + n·(j+1))` (s0: Σ cached tokens at the start).
    Decode {
        k: u64,
        line: DecodeLine,
        s0: f64,
        n: f64,
    },
}

#[derive(Debug, Clone)]
struct Unit {
    start: f64,
    end: f64,
    kind: UnitKind,
}

/// Counters over the engine's life.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    pub iterations: u64,
    pub preemptions: u64,
    pub prefill_tokens: u64,
    pub decode_tokens: u64,
    pub busy_us: f64,
    pub peak_running: u32,
    pub peak_kv_blocks: u64,
}

#[derive(Debug, Clone)]
pub struct ReplicaEngine {
    cfg: EngineConfig,
    cost: IterationCost,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    used_blocks: u64,
    current: Option<Unit>,
    stats: EngineStats,
}

impl ReplicaEngine {
    pub fn new(cfg: EngineConfig, cost: IterationCost) -> Self {
        Self {
            cfg,
            cost,
            waiting: VecDeque::new(),
            running: Vec::new(),
            used_blocks: 0,
            current: None,
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn stats(&self) -> EngineStats {
        self.stats
    }
    /// Requests in the engine (waiting or running).
    pub fn in_system(&self) -> usize {
        self.waiting.len() + self.running.len()
    }
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
    pub fn running(&self) -> usize {
        self.running.len()
    }
    /// Fraction of KV-cache blocks in use.
    pub fn kv_usage(&self) -> f64 {
        self.used_blocks as f64 / self.cfg.kv_blocks.max(1) as f64
    }
    /// An iteration is in progress.
    pub fn is_busy(&self) -> bool {
        self.current.is_some()
    }
    /// When the engine next changes state on its own (the end of the work in progress).
    pub fn next_event(&self) -> Option<f64> {
        self.current.as_ref().map(|u| u.end)
    }

    fn blocks(&self, tokens: u32) -> u64 {
        (tokens as u64).div_ceil(self.cfg.block_size as u64)
    }

    /// Checks a request against the replica's limits without taking it.
    pub fn check(&self, prompt: u32, output: u32) -> Result<(), Refusal> {
        if prompt == 0 || output == 0 {
            return Err(Refusal::Empty);
        }
        let tokens = prompt.saturating_add(output);
        if tokens > self.cfg.max_model_len {
            return Err(Refusal::TooLong {
                tokens,
                limit: self.cfg.max_model_len,
            });
        }
        if !self.cfg.chunked_prefill && tokens > self.cfg.max_num_batched_tokens {
            // Without chunking a prompt (recomputed with its output after a preemption) must fit
            // one iteration's budget, as vLLM requires max_num_batched_tokens >= max_model_len.
            return Err(Refusal::TooLong {
                tokens,
                limit: self.cfg.max_num_batched_tokens,
            });
        }
        if self.blocks(tokens) > self.cfg.kv_blocks {
            return Err(Refusal::ExceedsKvCache {
                tokens,
                capacity: self.cfg.kv_blocks * self.cfg.block_size as u64,
            });
        }
        Ok(())
    }

    /// Takes a request at `now` (after finishing, into `done`, whatever ended by then).
    pub fn submit(
        &mut self,
        now: f64,
        req: Request,
        done: &mut Vec<Finished>,
    ) -> Result<(), Refusal> {
        self.check(req.prompt, req.output)?;
        self.advance(now, done);
        self.waiting.push_back(Seq {
            id: req.id,
            arrival: req.arrival,
            prompt: req.prompt,
            output: req.output,
            generated: 0,
            // At least the last prompt token is computed: its logits give the first token.
            computed: req.cached_prefix.min(req.prompt - 1),
            first_token: None,
            preemptions: 0,
        });
        match &self.current {
            None => self.form(now),
            Some(Unit {
                kind: UnitKind::Decode { .. },
                ..
            }) => self.cut_decode_run(now),
            Some(_) => {}
        }
        Ok(())
    }

    /// Applies every unit of work that ended by `now`, forming the next ones.
    pub fn advance(&mut self, now: f64, done: &mut Vec<Finished>) {
        while let Some(end) = self.next_event() {
            if end > now {
                break;
            }
            let unit = self.current.take().expect("next_event is Some");
            self.stats.busy_us += unit.end - unit.start;
            self.apply(unit, done);
            self.form(end);
        }
    }

    /// Drops waiting requests that arrived before `cutoff` and have no output yet (their clients
    /// gave up); returns their ids.
    pub fn abort_waiting_before(&mut self, cutoff: f64) -> Vec<u64> {
        let mut gone = Vec::new();
        self.waiting.retain(|s| {
            let expired = s.arrival < cutoff && s.first_token.is_none();
            if expired {
                gone.push(s.id);
            }
            !expired
        });
        gone
    }

    /// The replica dies: every request in it is lost; returns their ids.
    pub fn abort_all(&mut self) -> Vec<u64> {
        let ids = self
            .running
            .iter()
            .chain(self.waiting.iter())
            .map(|s| s.id)
            .collect();
        self.running.clear();
        self.waiting.clear();
        self.used_blocks = 0;
        self.current = None;
        ids
    }

    /// An arrival during a run of decode iterations: the iteration in progress completes, the
    /// run stops there and the next iteration can admit the newcomer.
    fn cut_decode_run(&mut self, now: f64) {
        let Some(Unit {
            start,
            end,
            kind: UnitKind::Decode { k, line, s0, n },
        }) = &mut self.current
        else {
            return;
        };
        let elapsed = now - *start;
        let total = |k: u64| line.run_ms(*s0, *n, k) * 1000.0;
        // Largest j with total(j) <= elapsed: the iterations already over.
        let (mut lo, mut hi) = (0u64, *k);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if total(mid) <= elapsed {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let keep = (lo + 1).min(*k);
        *k = keep;
        *end = *start + total(keep);
    }

    /// Decides the next unit of work starting at `t`, or goes idle.
    fn form(&mut self, t: f64) {
        debug_assert!(self.current.is_none());
        if self.running.is_empty() && self.waiting.is_empty() {
            return;
        }
        if let Some(k) = self.decode_run_length() {
            let n = self.running.len() as f64;
            let s0: f64 = self.running.iter().map(|s| s.computed as f64).sum();
            let line = self.cost.decode_line(n);
            let end = t + line.run_ms(s0, n, k) * 1000.0;
            self.current = Some(Unit {
                start: t,
                end,
                kind: UnitKind::Decode { k, line, s0, n },
            });
            return;
        }
        let (plan, work) = self.schedule_step();
        if plan.is_empty() {
            // Nothing can run (cannot happen for requests that passed `check`).
            return;
        }
        let ms = self.cost.iteration_ms(&work);
        self.current = Some(Unit {
            start: t,
            end: t + ms * 1000.0,
            kind: UnitKind::Step { plan },
        });
    }

    /// Iterations of pure decode that can run before anything changes, if the next iteration is
    /// one: every running sequence decodes, nobody can be admitted, and the cache holds them.
    fn decode_run_length(&self) -> Option<u64> {
        if self.running.is_empty() || self.running.iter().any(|s| s.needs() != 1) {
            return None;
        }
        if (self.running.len() as u64) > self.cfg.max_num_batched_tokens as u64 {
            return None;
        }
        if self.head_admissible() {
            return None;
        }
        let to_finish = self
            .running
            .iter()
            .map(|s| (s.output - s.generated) as u64)
            .min()?;
        let free = self.cfg.kv_blocks - self.used_blocks;
        let bs = self.cfg.block_size as u64;
        let need = |k: u64| -> u64 {
            self.running
                .iter()
                .map(|s| (s.computed as u64 + k).div_ceil(bs) - (s.computed as u64).div_ceil(bs))
                .sum()
        };
        if need(to_finish) <= free {
            return Some(to_finish);
        }
        let (mut lo, mut hi) = (0u64, to_finish);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if need(mid) <= free {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        // 0: the next iteration needs a preemption, which a step does.
        (lo > 0).then_some(lo)
    }

    /// Whether the head of the waiting queue could join the next iteration.
    fn head_admissible(&self) -> bool {
        let Some(h) = self.waiting.front() else {
            return false;
        };
        if self.running.len() >= self.cfg.max_num_seqs as usize {
            return false;
        }
        let budget = self
            .cfg
            .max_num_batched_tokens
            .saturating_sub(self.running.len() as u32);
        let chunk = if self.cfg.chunked_prefill {
            h.needs().min(budget)
        } else if h.needs() <= budget {
            h.needs()
        } else {
            0
        };
        if chunk == 0 {
            return false;
        }
        // Blocks the decodes take this iteration (at most one each) plus the chunk's.
        let bs = self.cfg.block_size as u64;
        let decode_blocks: u64 = self
            .running
            .iter()
            .filter(|s| (s.computed as u64).is_multiple_of(bs))
            .count() as u64;
        // A waiting sequence holds no blocks yet; a cached prefix is counted as its own (vLLM
        // shares those blocks: the count errs towards a fuller cache).
        self.used_blocks + decode_blocks + self.blocks(h.computed + chunk) <= self.cfg.kv_blocks
    }

    /// vLLM V1's `schedule()`: running sequences first (in order), preempting the newest when
    /// the cache is full, then waiting ones while slots, budget and blocks allow.
    fn schedule_step(&mut self) -> (Vec<(u32, u32)>, Work) {
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut plan: Vec<(u32, u32)> = Vec::new();
        let mut work = Work::default();
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let needs = self.running[i].needs();
            let n = needs.min(budget);
            if !self.cfg.chunked_prefill && n < needs {
                i += 1;
                continue;
            }
            let computed = self.running[i].computed;
            let new_blocks = self.blocks(computed + n) - self.blocks(computed);
            let mut self_preempted = false;
            while self.used_blocks + new_blocks > self.cfg.kv_blocks {
                let victim = self.running.len() - 1;
                self.preempt_last();
                preempted = true;
                if victim == i {
                    self_preempted = true;
                    break;
                }
            }
            if self_preempted {
                break;
            }
            self.used_blocks += new_blocks;
            budget -= n;
            plan.push((i as u32, n));
            if needs == 1 && self.running[i].generated > 0 {
                work.decode_seqs += 1.0;
                work.decode_ctx += (computed + 1) as f64;
            } else {
                work.add_prefill(n as f64, computed as f64);
            }
            i += 1;
        }
        if !preempted {
            while budget > 0 && self.running.len() < self.cfg.max_num_seqs as usize {
                let Some(h) = self.waiting.front() else { break };
                let needs = h.needs();
                let n = needs.min(budget);
                if !self.cfg.chunked_prefill && n < needs {
                    break;
                }
                let new_blocks = self.blocks(h.computed + n);
                if self.used_blocks + new_blocks > self.cfg.kv_blocks {
                    break;
                }
                let seq = self.waiting.pop_front().expect("front is Some");
                self.used_blocks += new_blocks;
                budget -= n;
                work.add_prefill(n as f64, seq.computed as f64);
                plan.push((self.running.len() as u32, n));
                self.running.push(seq);
            }
        }
        self.stats.peak_running = self.stats.peak_running.max(self.running.len() as u32);
        self.stats.peak_kv_blocks = self.stats.peak_kv_blocks.max(self.used_blocks);
        (plan, work)
    }

    /// Preempts the newest running sequence: its cache is freed and it waits at the head of the
    /// queue to be recomputed (prompt and what it generated so far).
    fn preempt_last(&mut self) {
        let mut s = self
            .running
            .pop()
            .expect("preempting from a non-empty batch");
        self.used_blocks -= self.blocks(s.computed);
        s.computed = 0;
        s.preemptions += 1;
        self.stats.preemptions += 1;
        self.waiting.push_front(s);
    }

    fn apply(&mut self, unit: Unit, done: &mut Vec<Finished>) {
        let end = unit.end;
        match unit.kind {
            UnitKind::Step { plan } => {
                self.stats.iterations += 1;
                for (i, n) in plan {
                    let s = &mut self.running[i as usize];
                    s.computed += n;
                    if s.needs() == 0 {
                        if s.generated == 0 || n > 1 {
                            self.stats.prefill_tokens += n as u64;
                        } else {
                            self.stats.decode_tokens += 1;
                        }
                        s.generated += 1;
                        s.first_token.get_or_insert(end);
                    } else {
                        self.stats.prefill_tokens += n as u64;
                    }
                }
            }
            UnitKind::Decode { k, .. } => {
                self.stats.iterations += k;
                let bs = self.cfg.block_size as u64;
                for s in &mut self.running {
                    let before = (s.computed as u64).div_ceil(bs);
                    s.computed += k as u32;
                    s.generated += k as u32;
                    self.used_blocks += (s.computed as u64).div_ceil(bs) - before;
                }
                self.stats.decode_tokens += k * self.running.len() as u64;
                self.stats.peak_kv_blocks = self.stats.peak_kv_blocks.max(self.used_blocks);
            }
        }
        let bs = self.cfg.block_size as u64;
        let mut freed = 0u64;
        self.running.retain(|s| {
            if s.generated < s.output {
                return true;
            }
            freed += (s.computed as u64).div_ceil(bs);
            done.push(Finished {
                id: s.id,
                arrival: s.arrival,
                first_token: s.first_token.unwrap_or(end),
                end,
                prompt: s.prompt,
                output: s.output,
                preemptions: s.preemptions,
            });
            false
        });
        self.used_blocks -= freed;
    }
}
