//! Following one job's discovered targets: after every change to the pods (or nodes) its
//! `kubernetes_sd_configs` read, the targets are recomputed (labels, relabeling) and compared
//! with the running scrape loops: a new target gets a loop, a target gone has its loop
//! stopped, an unchanged one keeps its loop (and its staleness state). A target is the same
//! when its URL and final labels are, as Prometheus' scrape pool keys targets by their labels.
//!
//! Prometheus' discovery manager passes updates on at most every 5 s; here a burst of events
//! is coalesced for [`SETTLE`] only, so a new pod is scraped sooner.

use super::kubernetes_sd::pod_targets;
use super::relabel::Labels;
use super::scrape::{self, ScrapeTarget, TargetRules};
use crate::kubernetes::discovery::{DiscoveredNode, NodeSet, PodSet};
use crate::pipeline::Fanout;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait after a change for the rest of its burst.
const SETTLE: Duration = Duration::from_millis(100);

/// The pods of one watch a job reads.
pub struct Source {
    pub pods: Arc<PodSet>,
    /// The namespace read from the set (it may hold every namespace's pods); `None`: all.
    pub namespace: Option<String>,
    /// With `attach_metadata.node`: the nodes whose labels targets get.
    pub nodes: Option<Arc<NodeSet>>,
}

/// A job whose targets come from discovery.
pub struct DiscoveredJob {
    pub rules: TargetRules,
    pub sources: Vec<Source>,
}

type TargetKey = (String, Labels);

/// Runs the job's scrape loops, following its targets, until `stop`.
pub async fn follow(
    job: DiscoveredJob,
    receiver: Arc<str>,
    fanout: Arc<Fanout>,
    stop: CancellationToken,
) {
    let mut changes: Vec<_> = job.sources.iter().map(|s| s.pods.changes()).collect();
    let nodes = job.sources.iter().filter_map(|s| s.nodes.as_ref());
    changes.extend(nodes.map(|n| n.changes()));
    if changes.is_empty() {
        // No namespace to watch (own_namespace unreadable): nothing to discover.
        return stop.cancelled().await;
    }
    let mut running: BTreeMap<TargetKey, CancellationToken> = BTreeMap::new();
    let mut reported = HashSet::new();
    loop {
        let mut targets = current_targets(&job, &mut reported);
        running.retain(|key, loop_stop| {
            let stays = targets.contains_key(key);
            if !stays {
                tracing::info!(receiver = %receiver, target = %key.0, "discovered target gone; its scrape loop stops");
                loop_stop.cancel();
            }
            stays
        });
        targets.retain(|key, _| !running.contains_key(key));
        for (key, target) in targets {
            let loop_stop = stop.child_token();
            // Not supervised: a loop ends whenever its target goes, which is no failure.
            let run = scrape::run(target, receiver.clone(), fanout.clone(), loop_stop.clone());
            tokio::spawn(run);
            running.insert(key, loop_stop);
        }
        let changed = changes.iter_mut().map(|c| Box::pin(c.changed()));
        tokio::select! {
            () = stop.cancelled() => return,
            _ = futures::future::select_all(changed) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SETTLE) => {}
        }
        for change in &mut changes {
            change.borrow_and_update();
        }
    }
}

/// Every target the job's sources give now, keyed by URL and labels; a target relabeling
/// cannot make valid is logged once and skipped, as Prometheus drops it.
fn current_targets(
    job: &DiscoveredJob,
    reported: &mut HashSet<String>,
) -> BTreeMap<TargetKey, ScrapeTarget> {
    let mut targets = BTreeMap::new();
    for source in &job.sources {
        let lookup = source
            .nodes
            .as_ref()
            .map(|nodes| move |name: &str| -> Option<Arc<DiscoveredNode>> { nodes.get(name) });
        let lookup = lookup.as_ref().map(|f| f as &dyn Fn(&str) -> _);
        for pod in source.pods.snapshot() {
            if source
                .namespace
                .as_ref()
                .is_some_and(|ns| *ns != pod.namespace)
            {
                continue;
            }
            for labels in pod_targets(&pod, lookup) {
                match scrape::populate(&job.rules, labels) {
                    Ok(Some(target)) => {
                        let key = (target.url.clone(), target.labels.clone());
                        targets.insert(key, target);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        if reported.insert(error.clone()) {
                            tracing::warn!(job = %job.rules.job_name, pod = %pod.name, %error, "discovered target dropped");
                        }
                    }
                }
            }
        }
    }
    targets
}
