//! Cluster building: the nodes, GPUs and their background load from the scenario's pools,
//! the engine and its capacity index, the services, the traffic sources and the random
//! streams; then the warm start (initial replicas placed, the first arrivals and tick queued).

use super::*;

impl<'a> Sim<'a> {
    pub(super) fn new(sc: &'a LoadedScenario) -> Result<Self, SimError> {
        let s = &sc.scenario;
        let nodes = cluster_nodes(sc);
        let mut gpus = Vec::new();
        let mut node_gpu_base = Vec::new();
        for node in &nodes {
            let spec = sc.catalog.spec(node.model);
            node_gpu_base.push(gpus.len() as u32);
            for g in &node.gpus {
                gpus.push(GpuSim::new(
                    node.ordinal,
                    g.index,
                    node.model,
                    spec.idle_w,
                    spec.tdp_w,
                    g.utilisation,
                    &s.perf,
                ));
            }
        }
        let mut engine = Engine::new(s.engine.clone(), sc.catalog.clone(), nodes.len() as u32)?;
        // Decisions without a matrix go through the capacity index; the cluster state records
        // every change to `nodes` and reports it with `flush_to(&mut engine)`.
        engine.enable_index();
        let services: Vec<ServiceSim> = s
            .services
            .iter()
            .map(|spec| ServiceSim::new(spec.clone(), s.autoscaler.build()))
            .collect();
        let demand = s
            .services
            .iter()
            .map(|x| {
                let cv = x.service_time_cv;
                // Gamma with mean m and coefficient of variation cv: shape 1/cv², scale m·cv².
                // A cv so small that cv² underflows (1e-200) gives shape = inf, which Gamma
                // refuses: such a demand is constant, as with cv = 0 (it used to panic here).
                (cv > 0.0)
                    .then(|| Gamma::new(1.0 / (cv * cv), x.service_time_ms * cv * cv).ok())
                    .flatten()
            })
            .collect();
        let end = secs(sc.duration_s());
        let names: Vec<String> = s.services.iter().map(|x| x.name.clone()).collect();
        let mut sources = Vec::new();
        let resolve = |p: &std::path::Path| sc.resolve(p);
        if let Some(t) = &s.traffic {
            let weighted: Vec<(usize, f64)> = s
                .services
                .iter()
                .enumerate()
                .filter(|(_, x)| x.traffic.is_none())
                .map(|(i, x)| (i, x.traffic_weight))
                .collect();
            if !weighted.is_empty() {
                sources.push(ArrivalSource::new(
                    t,
                    Target::Mix(ServiceMix::new(&weighted)),
                    s.seed,
                    0,
                    to_secs(end),
                    resolve,
                    &names,
                    s.skip_bad_rows,
                )?);
            }
        }
        for (i, x) in s.services.iter().enumerate() {
            if let Some(t) = &x.traffic {
                sources.push(ArrivalSource::new(
                    t,
                    Target::One(i),
                    s.seed,
                    1 + i as u64,
                    to_secs(end),
                    resolve,
                    &names,
                    s.skip_bad_rows,
                )?);
            }
        }
        let mut demand_rng = ChaCha8Rng::seed_from_u64(s.seed);
        demand_rng.set_stream(1_000_000);
        let mut models: Vec<GpuModel> = s.pools.iter().map(|p| p.gpu_model).collect();
        models.sort();
        models.dedup();
        let diag = crate::diagnosis::Tracker::new(&services, &models, &gpus, &s.autoscaler);
        Ok(Self {
            sc,
            engine,
            nodes: ClusterState::new(nodes),
            node_gpu_base,
            gpus,
            replicas: Vec::new(),
            services,
            sources,
            demand,
            demand_rng,
            queue: EventQueue::default(),
            end,
            tick: secs(s.tick_s),
            decisions: Vec::new(),
            rows: Vec::new(),
            window: Window::new(),
            all_hist: latency_histogram(),
            next_token: 0,
            totals: RunTotals::default(),
            models,
            rollout: None,
            startup_override: None,
            llm_done: Vec::new(),
            route_rng: {
                let mut r = ChaCha8Rng::seed_from_u64(s.seed);
                r.set_stream(2_000_000);
                r
            },
            diag,
        })
    }

    pub(super) fn start(&mut self) -> Result<(), SimError> {
        // Initial replicas are warm: the cluster was already serving when the run begins.
        for s in 0..self.services.len() {
            if self.services[s].spec.start_at_s > 0.0 {
                self.queue.push(
                    secs(self.services[s].spec.start_at_s),
                    Event::ServiceStart { service: s as u32 },
                );
                continue;
            }
            for _ in 0..self.services[s].spec.initial_replicas {
                let r = self.new_replica(s as u32);
                self.try_place(0, r, true);
            }
        }
        for src in 0..self.sources.len() {
            self.pull_arrival(src as u32)?;
        }
        if self.tick <= self.end {
            self.queue.push(self.tick, Event::Tick);
        }
        Ok(())
    }
}

/// The scenario's nodes as the engine sees them before anything runs: pools → nodes
/// `<pool>-<n>` with the catalogue's GPU memory, `node_state`'s background utilisation and
/// cordons, a pool's designated sharing config and MIG layout. The simulator starts from these;
/// live mode's conformance tests compare against them.
pub fn cluster_nodes(sc: &LoadedScenario) -> Vec<NodeView> {
    let s = &sc.scenario;
    let mut nodes = Vec::new();
    for pool in &s.pools {
        let spec = sc.catalog.spec(pool.gpu_model);
        let layout = gpusched_policies::mig::layout_from_names(&pool.mig_layout, pool.gpu_model)
            .unwrap_or_default();
        for i in 1..=pool.nodes {
            let name = format!("{}-{}", pool.name, i);
            let mut node = NodeView::new(
                name.clone(),
                nodes.len() as u32,
                pool.name.clone(),
                pool.gpu_model,
                pool.gpus_per_node,
                spec.memory_gb,
            );
            let state = s.node_state.iter().find(|n| n.node == name);
            let background = state.map_or(0.0, |n| n.background_utilisation);
            node.cordoned = state.is_some_and(|n| n.cordoned);
            if let Some(d) = pool.sharing {
                node.designated = Some(d);
                node.sharing = d;
            }
            for g in &mut node.gpus {
                g.utilisation = background;
                if !layout.is_empty() {
                    g.mig = layout
                        .iter()
                        .map(|i| MigSlot {
                            instance: *i,
                            replica: None,
                        })
                        .collect();
                    g.mode = SharingMode::Mig;
                }
            }
            nodes.push(node);
        }
    }
    nodes
}
