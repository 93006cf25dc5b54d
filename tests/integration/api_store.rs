//! Store functions behind the operator API: tokens, audit, tenant overview and deletion, history pages, objects, consent requests.
