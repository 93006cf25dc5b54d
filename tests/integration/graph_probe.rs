//! Test connection, tenant discovery by domain, the organization read and admin consent, against the emulator over HTTP.
