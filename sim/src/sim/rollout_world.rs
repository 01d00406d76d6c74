//! The rollout's side of the simulator: the hooks `Sim` calls (set-up, tick, wake-up, a pod's
//! start-up, autoscaler protection, the report) and `Sim`'s implementation of [`RolloutWorld`],
//! the public interface through which the rollout executor (`crate::rollout`) acts on the
//! simulation. The executor keeps its own state; it never reaches `Sim`'s fields.

use super::*;

/// The rollout's hooks: the executor is taken out of the simulation while it runs, and reaches
/// the simulation only through [`RolloutWorld`].
impl Sim<'_> {
    /// Sets up the scenario's rollout, if it has a `[reconfig]` section.
    pub(super) fn init_rollout(&mut self) {
        if let Some(cfg) = self.sc.scenario.reconfig.clone() {
            self.rollout = Some(RolloutExecutor::new(cfg, &self.nodes, &self.engine));
        }
    }

    fn with_rollout(&mut self, f: impl FnOnce(&mut RolloutExecutor, &mut Self)) {
        if let Some(mut x) = self.rollout.take() {
            f(&mut x, self);
            self.rollout = Some(x);
        }
    }

    /// Called after each tick's measurement.
    pub(super) fn rollout_tick(&mut self, t: SimTime) {
        self.with_rollout(|x, sim| x.tick(sim, t));
    }

    /// A wake-up the rollout asked for.
    pub(super) fn rollout_wake(&mut self, t: SimTime) {
        self.with_rollout(|x, sim| x.wake(sim, t));
    }

    /// Start-up of replica `r` of service `svc`: with the readiness probe when a rollout
    /// (re)started it.
    pub(super) fn pod_startup_s(&self, r: u32, svc: usize) -> f64 {
        let startup = self.services[svc].spec.startup_s;
        match (&self.startup_override, &self.rollout) {
            (Some((x, s)), _) if *x == r => *s,
            (_, Some(x)) => x.startup_s(r, startup),
            _ => startup,
        }
    }

    /// A pod the rollout is moving or waiting for: the autoscaler leaves it alone.
    pub(super) fn rollout_protected(&self, r: u32) -> bool {
        self.rollout.as_ref().is_some_and(|x| x.protects(r))
    }

    /// The rollout's report for summary.json.
    pub(super) fn rollout_report(&mut self) -> Option<ReconfigReport> {
        let mut x = self.rollout.take()?;
        let r = x.report(self, self.end);
        self.rollout = Some(x);
        Some(r)
    }
}

impl RolloutWorld for Sim<'_> {
    fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn rows(&self) -> &[WindowRow] {
        &self.rows
    }

    fn tick_s(&self) -> f64 {
        to_secs(self.tick)
    }

    fn plugin_restart_s(&self) -> f64 {
        self.sc.scenario.disruption.plugin_restart_s
    }

    fn service_name(&self, service: usize) -> &str {
        &self.services[service].spec.name
    }

    fn service_startup_s(&self, service: usize) -> f64 {
        self.services[service].spec.startup_s
    }

    fn service_pods(&self, service: usize) -> &[u32] {
        &self.services[service].replicas
    }

    fn pod(&self, r: u32) -> PodView {
        let rep = &self.replicas[r as usize];
        PodView {
            service: rep.service as usize,
            state: rep.state,
            node: rep.loc.map(|(n, _, _)| n as usize),
            share_pct: rep.share_pct,
            in_flight: rep.in_flight,
        }
    }

    fn pods_on(&self, n: usize) -> Vec<u32> {
        (0..self.replicas.len() as u32)
            .filter(|&r| {
                let rep = &self.replicas[r as usize];
                rep.loc.is_some_and(|(node, _, _)| node as usize == n)
                    && matches!(
                        rep.state,
                        ReplicaState::Starting | ReplicaState::Ready | ReplicaState::Draining
                    )
            })
            .collect()
    }

    fn set_cordoned(&mut self, n: usize, cordoned: bool) {
        self.nodes.set_cordoned(n, cordoned);
        self.nodes.flush_to(&mut self.engine);
    }

    fn start_pod(&mut self, t: SimTime, service: usize, startup_s: f64) -> u32 {
        let r = self.new_replica(service as u32);
        self.startup_override = Some((r, startup_s));
        self.try_place(t, r, false);
        self.startup_override = None;
        r
    }

    fn evict(&mut self, t: SimTime, r: u32) {
        if self.replicas[r as usize].in_flight == 0 {
            self.release(t, r, "evicted for a config rollout");
        } else {
            self.replicas[r as usize].state = ReplicaState::Draining;
        }
    }

    fn restart_pod(&mut self, t: SimTime, r: u32) -> u64 {
        let rep = &self.replicas[r as usize];
        let draining = rep.state == ReplicaState::Draining;
        let svc = rep.service as usize;
        let before = self.services[svc].counts.failed;
        self.kill(
            t,
            r,
            FailCause::PodRestart,
            "lost its GPU context (device-plugin restart)",
        );
        if draining {
            // It was leaving anyway: its replacement exists.
            self.replicas[r as usize].state = ReplicaState::Gone;
            self.services[svc].replicas.retain(|&y| y != r);
        }
        self.services[svc].counts.failed - before
    }

    fn apply_node_config(&mut self, n: usize, sharing: NodeSharing) {
        self.nodes.set_sharing(n, sharing);
        self.nodes.flush_to(&mut self.engine);
        let d = &self.sc.scenario.disruption;
        self.totals.reconfigurations += 1;
        self.totals.reconfig_gpu_seconds += d.plugin_restart_s * self.nodes[n].gpus.len() as f64;
    }

    fn set_time_slicing_replicas(&mut self, family: GpuFamily, replicas: u8) {
        let mut cfg = self.engine.config.clone();
        match family {
            GpuFamily::H100 => cfg.time_slicing.h100_replicas = replicas,
            GpuFamily::A100 => cfg.time_slicing.a100_replicas = replicas,
        }
        if let Ok(mut e) = Engine::new(cfg, self.engine.catalog.clone(), self.nodes.len() as u32) {
            // A fresh engine gets a fresh capacity index over the current nodes.
            e.enable_index();
            e.all_nodes_changed();
            self.engine = e;
        }
    }

    fn log_step(&mut self, t: SimTime, step: RolloutStep) {
        self.log(t, Decision::Rollout(step));
    }

    fn wake_at(&mut self, t: SimTime) {
        self.queue.push(t, Event::RolloutWake);
    }
}
