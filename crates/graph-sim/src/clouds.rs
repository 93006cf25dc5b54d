//! National clouds: one emulator answers for all of them, told apart by the Host header or by a path
//! prefix naming the cloud's Graph host (`/graph.microsoft.us/v1.0/users`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimCloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl SimCloud {
    pub const ALL: [SimCloud; 4] = [SimCloud::Global, SimCloud::UsGov, SimCloud::UsGovDod, SimCloud::China];

    pub fn graph_host(self) -> &'static str {
        match self {
            SimCloud::Global => "graph.microsoft.com",
            SimCloud::UsGov => "graph.microsoft.us",
            SimCloud::UsGovDod => "dod-graph.microsoft.us",
            SimCloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }

    pub fn from_graph_host(host: &str) -> Option<Self> {
        let host = host.split(':').next().unwrap_or(host);
        Self::ALL.into_iter().find(|c| c.graph_host().eq_ignore_ascii_case(host))
    }
}
