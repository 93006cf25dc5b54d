//! The operator API (/api/v1) over HTTP: access, problem details, every endpoint.
