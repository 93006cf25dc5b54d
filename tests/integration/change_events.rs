//! placeholder: filled in by the change-events work (issue 17).
