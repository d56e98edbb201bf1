//! The pods of this node, indexed by container id and pod uid: what the Kubernetes API says,
//! parsed from its list and watch responses. Bounded; every object it cannot use is counted.

use std::{collections::HashMap, sync::Arc};

use serde::Deserialize;

/// A kubelet runs 110 pods by default and 250 at most in practice; the bound only keeps a
/// misbehaving API (or a watch without the node selector) from growing the index forever.
pub const MAX_PODS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Deserialize)]
struct ObjectMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(rename = "resourceVersion", default)]
    resource_version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ContainerStatus {
    #[serde(rename = "containerID", default)]
    container_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct PodStatus {
    #[serde(rename = "containerStatuses", default)]
    containers: Vec<ContainerStatus>,
    #[serde(rename = "initContainerStatuses", default)]
    init_containers: Vec<ContainerStatus>,
    #[serde(rename = "ephemeralContainerStatuses", default)]
    ephemeral_containers: Vec<ContainerStatus>,
}

#[derive(Debug, Deserialize)]
pub struct Pod {
    metadata: ObjectMeta,
    #[serde(default)]
    status: Option<PodStatus>,
}

impl Pod {
    fn meta(&self) -> PodMeta {
        PodMeta {
            name: self.metadata.name.clone(),
            namespace: self.metadata.namespace.clone(),
            uid: self.metadata.uid.clone(),
        }
    }

    /// Container ids without the runtime scheme (`containerd://<id>` → `<id>`).
    fn container_ids(&self) -> Vec<String> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        status
            .containers
            .iter()
            .chain(&status.init_containers)
            .chain(&status.ephemeral_containers)
            .filter_map(|c| c.container_id.as_deref())
            .map(|id| id.rsplit_once("://").map_or(id, |(_, id)| id).to_owned())
            .filter(|id| !id.is_empty())
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub struct PodList {
    metadata: ObjectMeta,
    items: Vec<Pod>,
}

impl PodList {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }
}

/// One line of a watch stream.
#[derive(Debug, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: serde_json::Value,
}

/// What a watch event means for the watcher.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    /// Applied; carry on from this resource version.
    Continue(Option<String>),
    /// The resource version is too old (410 Gone): list again.
    Relist,
    /// An object the index cannot use (counted, skipped).
    Unusable,
}

#[derive(Debug, Default)]
pub struct PodIndex {
    pods: HashMap<String, (Arc<PodMeta>, Vec<String>)>,
    by_container: HashMap<String, Arc<PodMeta>>,
    /// Pods not indexed because the index was full.
    pub dropped: u64,
}

impl PodIndex {
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn by_container(&self, id: &str) -> Option<Arc<PodMeta>> {
        self.by_container.get(id).cloned()
    }

    pub fn by_pod_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.pods.get(uid).map(|(meta, _)| meta.clone())
    }

    /// Replaces everything with a fresh list.
    pub fn replace(&mut self, list: PodList) {
        self.pods.clear();
        self.by_container.clear();
        for pod in list.items {
            self.upsert(&pod);
        }
    }

    fn upsert(&mut self, pod: &Pod) {
        if pod.metadata.uid.is_empty() {
            return;
        }
        self.remove(&pod.metadata.uid);
        if self.pods.len() >= MAX_PODS {
            self.dropped += 1;
            return;
        }
        let meta = Arc::new(pod.meta());
        let ids = pod.container_ids();
        for id in &ids {
            self.by_container.insert(id.clone(), meta.clone());
        }
        self.pods.insert(pod.metadata.uid.clone(), (meta, ids));
    }

    fn remove(&mut self, uid: &str) {
        if let Some((_, ids)) = self.pods.remove(uid) {
            for id in ids {
                self.by_container.remove(&id);
            }
        }
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: WatchEvent) -> WatchOutcome {
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let Ok(pod) = serde_json::from_value::<Pod>(event.object) else {
                    return WatchOutcome::Unusable;
                };
                if event.kind == "DELETED" {
                    self.remove(&pod.metadata.uid);
                } else {
                    self.upsert(&pod);
                }
                WatchOutcome::Continue(pod.metadata.resource_version)
            }
            "BOOKMARK" => WatchOutcome::Continue(
                event
                    .object
                    .pointer("/metadata/resourceVersion")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            ),
            // A Status object; 410 means our resource version fell out of etcd's window.
            "ERROR" if event.object.get("code").and_then(|c| c.as_u64()) == Some(410) => {
                WatchOutcome::Relist
            }
            _ => WatchOutcome::Unusable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = include_str!("../../../tests/fixtures/kubernetes/pods-on-node.json");
    const WATCH: &str = include_str!("../../../tests/fixtures/kubernetes/pods-watch.jsonl");
    const WEB_ID: &str = "8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b";

    #[test]
    fn indexes_a_pod_list_by_container_and_uid() {
        let list: PodList = serde_json::from_str(LIST).expect("test precondition");
        assert_eq!(list.resource_version(), Some("48213"));
        let mut index = PodIndex::default();
        index.replace(list);
        assert_eq!(index.len(), 2);
        let web = index.by_container(WEB_ID).expect("test precondition");
        assert_eq!(
            *web,
            PodMeta {
                name: "checkout-api-7c9d8f6b5-x2lqz".into(),
                namespace: "shop".into(),
                uid: "0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab".into(),
            }
        );
        // The init container's id maps to the same pod; a pending pod has no ids yet but is
        // found by uid.
        assert_eq!(
            index
                .by_container("1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3")
                .as_deref(),
            Some(&*web)
        );
        let pending = index
            .by_pod_uid("7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d")
            .expect("test precondition");
        assert_eq!(pending.name, "batch-report-28412345-9kq7t");
    }

    #[test]
    fn applies_a_watch_stream() {
        let mut index = PodIndex::default();
        index.replace(serde_json::from_str(LIST).expect("test precondition"));
        let outcomes: Vec<_> = WATCH
            .lines()
            .map(|line| index.apply(serde_json::from_str(line).expect("test precondition")))
            .collect();
        assert_eq!(
            outcomes,
            [
                WatchOutcome::Continue(Some("48230".into())),
                WatchOutcome::Continue(Some("48231".into())),
                WatchOutcome::Continue(Some("48240".into())),
                WatchOutcome::Relist,
            ]
        );
        // MODIFIED gave the pending pod its container; DELETED removed the web pod.
        assert_eq!(
            index
                .by_container("c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00")
                .expect("test precondition")
                .name,
            "batch-report-28412345-9kq7t"
        );
        assert!(index.by_container(WEB_ID).is_none());
        assert!(
            index
                .by_pod_uid("0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab")
                .is_none()
        );
    }

    #[test]
    fn unusable_objects_and_the_bound() {
        let mut index = PodIndex::default();
        let event = WatchEvent {
            kind: "ADDED".into(),
            object: serde_json::json!({"metadata": 5}),
        };
        assert_eq!(index.apply(event), WatchOutcome::Unusable);
        for i in 0..MAX_PODS + 3 {
            let event = WatchEvent {
                kind: "ADDED".into(),
                object: serde_json::json!({"metadata": {"name": "p", "namespace": "n", "uid": format!("u{i}")}}),
            };
            index.apply(event);
        }
        assert_eq!((index.len(), index.dropped), (MAX_PODS, 3));
    }
}
