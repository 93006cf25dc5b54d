//! A private Postgres cluster for tests that must configure the server itself (TLS, pg_hba): `initdb` in
//! a temporary directory, run as the `postgres` OS user (the tests run as root, and Postgres refuses
//! root), on a free loopback port, stopped and removed on drop. The shared server on 5432 is never
//! touched.
//!
//! The server listens on 127.0.0.1 and 127.0.0.2: its certificate names only the first, so a test can
//! reach it under a name the certificate does not have.
//!
//! With TLS, the test makes a CA and a server certificate for `localhost` and `127.0.0.1` with rcgen;
//! `ca_file` is the CA to trust, `other_ca_file` a CA that signed nothing of this server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How the private server accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `ssl = off`: plain connections only.
    Off,
    /// `ssl = on`; pg_hba accepts TLS and plain connections.
    On,
    /// `ssl = on`; pg_hba accepts TLS connections only (`hostssl`).
    Only,
}

/// A running private cluster; dropping it stops the server and deletes its directory.
pub struct PrivatePostgres {
    pub port: u16,
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (PEM), when TLS is on.
    pub ca_file: PathBuf,
    /// A CA that signed nothing of this server (PEM).
    pub other_ca_file: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    /// Starts a cluster; panics with the server's own words when it cannot.
    pub fn start(tls: Tls) -> PrivatePostgres {
        let bin = postgres_bin_dir();
        let dir = std::env::temp_dir().join(format!("entrasync-pg-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create the cluster directory");
        let port = free_port();
        let cluster = PrivatePostgres {
            port,
            ca_file: dir.join("ca.crt"),
            other_ca_file: dir.join("other-ca.crt"),
            dir: dir.clone(),
            bin: bin.clone(),
        };
        chown_postgres(&dir);
        run_as_postgres(
            &bin.join("initdb"),
            &["-D", path(&data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
        );
        if tls != Tls::Off {
            cluster.write_certificates(&data);
        }
        let hba = match tls {
            Tls::Only => "hostssl all all 127.0.0.0/8 trust\nlocal all all trust\n",
            Tls::On | Tls::Off => "host all all 127.0.0.0/8 trust\nlocal all all trust\n",
        };
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let ssl = if tls == Tls::Off {
            "ssl = off\n".to_owned()
        } else {
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned()
        };
        let conf = format!(
            "listen_addresses = '127.0.0.1,127.0.0.2'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 20\n\
             shared_buffers = 16MB\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n{ssl}",
            path(&dir)
        );
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).expect("read postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).expect("write postgresql.conf");
        chown_postgres(&dir);
        run_as_postgres(
            &bin.join("pg_ctl"),
            &["-D", path(&data), "-l", path(&dir.join("server.log")), "-w", "-t", "60", "start"],
        );
        cluster
    }

    /// A URL for database `name` on this server, with extra query parameters (`sslmode=…`).
    pub fn url(&self, name: &str, query: &str) -> String {
        let separator = if query.is_empty() { "" } else { "?" };
        format!("postgres://postgres@127.0.0.1:{}/{name}{separator}{query}", self.port)
    }

    /// From now on `role` must sign in with SCRAM over TLS (pg_hba `hostssl … scram-sha-256`), as on a
    /// managed service; the configuration is reloaded.
    pub fn require_scram_for(&self, role: &str) {
        let hba = self.dir.join("data").join("pg_hba.conf");
        let existing = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        std::fs::write(&hba, format!("hostssl all {role} 127.0.0.0/8 scram-sha-256\n{existing}")).expect("write");
        run_as_postgres(&self.bin.join("pg_ctl"), &["-D", path(&self.dir.join("data")), "reload"]);
    }

    /// The server's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn write_certificates(&self, data: &Path) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("CA key");
            let certificate = params.self_signed(&key).expect("CA certificate");
            (certificate, Issuer::new(params, key))
        };
        let (ca_certificate, issuer) = ca("entrasync test CA");
        let (other_certificate, _) = ca("entrasync other CA");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("server parameters");
        server.distinguished_name.push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate().expect("server key");
        let server_certificate = server.signed_by(&server_key, &issuer).expect("server certificate");
        std::fs::write(&self.ca_file, ca_certificate.pem()).expect("write CA");
        std::fs::write(&self.other_ca_file, other_certificate.pem()).expect("write other CA");
        std::fs::write(data.join("server.crt"), server_certificate.pem()).expect("write server certificate");
        let key_file = data.join("server.key");
        std::fs::write(&key_file, server_key.serialize_pem()).expect("write server key");
        // Postgres refuses a key readable by others.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("key permissions");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let stopped = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", path(&data), "-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
        if !matches!(&stopped, Ok(out) if out.status.success()) {
            eprintln!("could not stop the private Postgres in {}: {stopped:?}", self.dir.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest).
fn postgres_bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    if let Some(dir) = on_path {
        return dir;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").is_file());
    versions.sort_by_key(|dir| {
        dir.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().expect("initdb and pg_ctl: install Debian's postgresql package (deploy/local-services.sh does)")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn chown_postgres(dir: &Path) {
    let out = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).output().expect("run chown");
    assert!(out.status.success(), "chown {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

fn run_as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long a test waits for its private server to refuse or accept, at most.
pub const PRIVATE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
