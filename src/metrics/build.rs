//! Build information: which version each instance runs (mixed versions show during a rolling update).

use super::family::Declarer;

pub(crate) fn declare(d: &mut Declarer<'_>) {
    let info = d.int_gauge("entrasync_build_info", "Build information; the value is always 1", &["version"]);
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
}
