//! Who may connect and what they may do, as RabbitMQ's internal backend decides it: users with
//! RabbitMQ's password hashes and tags, the vhosts a user may open, permissions (configure,
//! write, read patterns) and topic permissions.
//!
//! [`AccessControl`] holds the registry. Every entry point asks it: the AMQP handshake
//! ([`AccessControl::authenticate`], [`AccessControl::grant`]), the vhost operations (through the
//! [`Grant`] a connection holds, which reads the current permissions at each check, so a change
//! acts on the next operation, as in RabbitMQ), and the admin commands (`ctl`) that change it.
//! Changes are written to the store (`persist::AccessWrites`) and survive restarts.
//!
//! - `password.rs`: RabbitMQ's password hashes.
//! - `permissions.rs`: patterns and what they allow.
//! - `sasl.rs`: PLAIN and AMQPLAIN responses.

mod external;
mod password;
mod permissions;
mod sasl;

pub use external::{CertLogin, LoginFrom, SanType};
pub(crate) use password::{HashingAlgorithm, PasswordHash};
pub(crate) use permissions::{Access, Pattern, Permission, TopicPermission};
pub(crate) use sasl::{parse as parse_sasl, Credentials};

use crate::error::AmqpResult;
use crate::persist::{AccessRecord, AccessWrites};
use crate::reply_text;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use storage::Store;

/// Why a login was refused (the client only ever learns "ACCESS_REFUSED"; the log says this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A mechanism Warren does not know.
    UnsupportedMechanism(String),
    /// A mechanism not offered on this connection (not configured, or EXTERNAL without TLS).
    NotOffered(String),
    /// The SASL response does not parse.
    Malformed,
    /// Unknown user or wrong password.
    InvalidCredentials(String),
    /// The user has no password and sent an empty one.
    BlankPassword(String),
    /// The user may only connect from loopback.
    LoopbackOnly(String),
    /// EXTERNAL without a client certificate.
    NoPeerCertificate,
    /// EXTERNAL: the certificate gives no user name (`ssl_cert_login_from`).
    NoNameFound,
}

impl std::fmt::Display for AuthError {
    /// RabbitMQ's log words for it (`user 'u' - invalid credentials`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::UnsupportedMechanism(m) => write!(f, "unknown authentication mechanism '{m}'"),
            AuthError::NotOffered(m) => write!(f, "invalid authentication mechanism '{m}'"),
            AuthError::Malformed => write!(f, "malformed SASL response"),
            AuthError::InvalidCredentials(u) => write!(f, "user '{u}' - invalid credentials"),
            AuthError::BlankPassword(u) => write!(
                f,
                "user '{u}' attempted to log in with a blank password, which is prohibited by the internal authN backend."
            ),
            AuthError::LoopbackOnly(u) => write!(f, "user '{u}' can only connect via localhost"),
            AuthError::NoPeerCertificate => write!(
                f,
                "connection peer presented no TLS (x.509) certificate"
            ),
            AuthError::NoNameFound => write!(f, "no name found"),
        }
    }
}

/// Why an admin command failed; the text is what `rabbitmqctl` prints after `Error:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// `User "u" already exists`.
    #[error("User \"{0}\" already exists")]
    UserExists(String),
    /// `User "u" does not exist`.
    #[error("User \"{0}\" does not exist")]
    NoSuchUser(String),
    /// `Virtual host 'v' does not exist`.
    #[error("Virtual host '{0}' does not exist")]
    NoSuchVHost(String),
    /// A pattern that does not compile, or another bad argument.
    #[error("{0}")]
    Invalid(String),
}

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Name.
    pub name: String,
    /// Password hash (empty: no password).
    pub hash: PasswordHash,
    /// Tags (`administrator`, `monitoring`, `policymaker`, `management`, `impersonator`, any).
    pub tags: Vec<String>,
}

/// Limits by RabbitMQ's names (`max-connections`, ...); a negative value means no limit.
pub(crate) type Limits = BTreeMap<String, i64>;

/// The limits a vhost may have.
pub(crate) const VHOST_LIMITS: [&str; 2] = ["max-connections", "max-queues"];
/// The limits a user may have.
pub(crate) const USER_LIMITS: [&str; 2] = ["max-connections", "max-channels"];

/// Parses a limits JSON text (`{"max-connections": 5}`): see [`limits_from`].
pub(crate) fn parse_limits(json: &str, known: &[&str], what: &str) -> Result<Limits, AdminError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| AdminError::Invalid(format!("cannot parse limits {json}: {e}")))?;
    limits_from(&v, known, what)
}

/// Limits from a JSON object, refusing names not in `known` with RabbitMQ's words
/// (`Unrecognised terms [{<<"bogus">>,1}] in limits`).
pub(crate) fn limits_from(
    v: &serde_json::Value,
    known: &[&str],
    what: &str,
) -> Result<Limits, AdminError> {
    let Some(obj) = v.as_object() else {
        return Err(AdminError::Invalid(format!(
            "limits must be a JSON object: {v}"
        )));
    };
    let mut limits = Limits::new();
    let mut unknown = Vec::new();
    for (k, v) in obj {
        match (known.contains(&k.as_str()), v.as_i64()) {
            (true, Some(n)) => {
                limits.insert(k.clone(), n);
            }
            _ => unknown.push(format!("{{<<\"{k}\">>,{v}}}")),
        }
    }
    if !unknown.is_empty() {
        return Err(AdminError::Invalid(format!(
            "Unrecognised terms [{}] in {what}",
            unknown.join(",")
        )));
    }
    Ok(limits)
}

/// A vhost's description and tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VHostInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Tracing (RabbitMQ's firehose flag: kept and shown; Warren has no firehose yet).
    pub tracing: bool,
    /// The default queue type (`classic`, `quorum`, `stream`), if set.
    pub default_queue_type: Option<String>,
    /// Who created it (its built-in exchanges show it as `user_who_performed_action`); empty
    /// for [`INTERNAL_USER`].
    pub created_by: String,
}

/// RabbitMQ's name for the broker acting on its own (boot-time objects, definitions import).
pub(crate) const INTERNAL_USER: &str = "rmq-internal";

/// RabbitMQ's name for what the command line tool does.
pub(crate) const CLI_USER: &str = "rmq-cli";

#[derive(Debug, Default)]
struct Registry {
    users: BTreeMap<String, User>,
    vhosts: BTreeMap<String, VHostInfo>,
    /// vhost → user → permission.
    permissions: HashMap<String, BTreeMap<String, Arc<Permission>>>,
    /// vhost → limits.
    vhost_limits: HashMap<String, Limits>,
    /// user → limits.
    user_limits: HashMap<String, Limits>,
    /// vhost → user → exchange → topic permission.
    topic_permissions: HashMap<String, BTreeMap<String, BTreeMap<String, Arc<TopicPermission>>>>,
}

/// The broker's users, vhost list and permissions.
#[derive(Debug)]
pub struct AccessControl {
    state: RwLock<Registry>,
    /// Bumped by every change, so that a cached check (see [`PublishCache`]) knows it is stale.
    generation: AtomicU64,
    store: Arc<Store>,
    /// Users that may connect only from loopback (`loopback_users`).
    loopback_users: Vec<String>,
}

impl AccessControl {
    /// An empty registry writing its changes to `store`.
    pub fn new(store: Arc<Store>, loopback_users: Vec<String>) -> Self {
        AccessControl {
            state: RwLock::new(Registry::default()),
            generation: AtomicU64::new(1),
            store,
            loopback_users,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        let guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        // Bumped under the lock: a reader that sees the new generation sees the new state.
        self.generation.fetch_add(1, Ordering::AcqRel);
        guard
    }

    fn persist(&self, records: impl IntoIterator<Item = AccessChange>) {
        let mut w = AccessWrites::default();
        for r in records {
            match r {
                AccessChange::Put(rec) => w.put(&rec),
                AccessChange::Delete(rec) => w.delete(&rec),
            }
        }
        w.submit(&self.store);
    }

    /// Puts back what the store kept (start-up). Returns false if the store had no access
    /// records yet (a first start: the caller creates the default user and vhost).
    pub fn restore(&self, records: Vec<AccessRecord>) -> bool {
        let mut st = self.write();
        let mut initialized = false;
        for r in records {
            match r {
                AccessRecord::Initialized => initialized = true,
                AccessRecord::User {
                    name,
                    password_hash,
                    hashing_algorithm,
                    tags,
                } => {
                    let algorithm = HashingAlgorithm::from_name(&hashing_algorithm)
                        .unwrap_or(HashingAlgorithm::Sha256);
                    let hash = PasswordHash::from_base64(algorithm, &password_hash)
                        .unwrap_or_else(|_| PasswordHash::none());
                    st.users.insert(name.clone(), User { name, hash, tags });
                }
                AccessRecord::VHost {
                    name,
                    description,
                    tags,
                    tracing,
                    default_queue_type,
                    created_by,
                } => {
                    st.vhosts.insert(
                        name.clone(),
                        VHostInfo {
                            name,
                            description,
                            tags,
                            tracing,
                            default_queue_type,
                            created_by,
                        },
                    );
                }
                AccessRecord::Permission {
                    user,
                    vhost,
                    configure,
                    write,
                    read,
                } => {
                    if let Ok(p) = Permission::new(&configure, &write, &read) {
                        st.permissions
                            .entry(vhost)
                            .or_default()
                            .insert(user, Arc::new(p));
                    }
                }
                AccessRecord::VhostLimits { vhost, limits } => {
                    st.vhost_limits.insert(vhost, limits);
                }
                AccessRecord::UserLimits { user, limits } => {
                    st.user_limits.insert(user, limits);
                }
                AccessRecord::TopicPermission {
                    user,
                    vhost,
                    exchange,
                    write,
                    read,
                } => {
                    if let Ok(p) = TopicPermission::new(&exchange, &write, &read, &user, &vhost) {
                        st.topic_permissions
                            .entry(vhost)
                            .or_default()
                            .entry(user)
                            .or_default()
                            .insert(exchange, Arc::new(p));
                    }
                }
                // The vhost's: restored by recovery once the vhosts exist.
                AccessRecord::Policy { .. } => {}
            }
        }
        initialized
    }

    /// Records that the first start's defaults were made (so deleting the default user is not
    /// undone by a restart).
    pub fn mark_initialized(&self) {
        self.persist([AccessChange::Put(AccessRecord::Initialized)]);
    }

    /// Checks a login: the user exists, the password matches its hash, and a loopback-only user
    /// comes from loopback. Returns the user name.
    pub fn authenticate(
        &self,
        creds: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<String, AuthError> {
        let st = self.read();
        let name = &creds.user;
        let Some(user) = st.users.get(name) else {
            return Err(AuthError::InvalidCredentials(name.clone()));
        };
        // RabbitMQ's internal backend refuses every blank password, whatever the hash.
        if creds.password.is_empty() {
            return Err(AuthError::BlankPassword(name.clone()));
        }
        if !user.hash.verify(&creds.password) {
            return Err(AuthError::InvalidCredentials(name.clone()));
        }
        if let Some(ip) = peer {
            if !is_loopback(ip) && self.loopback_users.iter().any(|u| u == name) {
                return Err(AuthError::LoopbackOnly(name.clone()));
            }
        }
        Ok(name.clone())
    }

    /// Checks an EXTERNAL login (the TLS layer verified the certificate that names `name`): the
    /// user exists, and a loopback-only user comes from loopback. No password is involved.
    pub fn authenticate_external(
        &self,
        name: &str,
        peer: Option<IpAddr>,
    ) -> Result<String, AuthError> {
        if !self.read().users.contains_key(name) {
            return Err(AuthError::InvalidCredentials(name.into()));
        }
        if let Some(ip) = peer {
            if !is_loopback(ip) && self.loopback_users.iter().any(|u| u == name) {
                return Err(AuthError::LoopbackOnly(name.into()));
            }
        }
        Ok(name.into())
    }

    /// What `user` may do in `vhost`, if they may open it at all (a permission entry exists,
    /// whatever its patterns). The error is RabbitMQ's 530.
    pub fn grant(self: &Arc<Self>, user: &str, vhost: &str) -> AmqpResult<Grant> {
        let st = self.read();
        if !st.vhosts.contains_key(vhost) {
            return Err(reply_text::vhost_not_found(vhost));
        }
        if !st
            .permissions
            .get(vhost)
            .is_some_and(|p| p.contains_key(user))
        {
            return Err(reply_text::vhost_access_refused(vhost, user));
        }
        // Tags are the user's at login, as RabbitMQ's connection keeps its user record.
        let impersonator = st
            .users
            .get(user)
            .is_some_and(|u| u.tags.iter().any(|t| t == "impersonator"));
        Ok(Grant {
            access: self.clone(),
            user: user.into(),
            vhost: vhost.into(),
            impersonator,
        })
    }

    // ---- users

    /// `add_user`.
    pub fn add_user(
        &self,
        name: &str,
        hash: PasswordHash,
        tags: Vec<String>,
    ) -> Result<(), AdminError> {
        if name.is_empty() {
            return Err(AdminError::Invalid("user cannot be an empty string".into()));
        }
        let mut st = self.write();
        if st.users.contains_key(name) {
            return Err(AdminError::UserExists(name.into()));
        }
        let user = User {
            name: name.into(),
            hash,
            tags,
        };
        self.persist([AccessChange::Put(user_record(&user))]);
        st.users.insert(name.into(), user);
        Ok(())
    }

    /// `delete_user`: also drops the user's permissions.
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        let mut st = self.write();
        let Some(user) = st.users.remove(name) else {
            return Err(AdminError::NoSuchUser(name.into()));
        };
        let mut changes = vec![AccessChange::Delete(user_record(&user))];
        if st.user_limits.remove(name).is_some() {
            changes.push(AccessChange::Delete(AccessRecord::UserLimits {
                user: name.into(),
                limits: Limits::new(),
            }));
        }
        for (vhost, users) in st.permissions.iter_mut() {
            if users.remove(name).is_some() {
                changes.push(AccessChange::Delete(permission_key(name, vhost)));
            }
        }
        for (vhost, users) in st.topic_permissions.iter_mut() {
            for x in users.remove(name).into_iter().flat_map(|m| m.into_keys()) {
                changes.push(AccessChange::Delete(topic_key(name, vhost, &x)));
            }
        }
        self.persist(changes);
        Ok(())
    }

    /// `change_password` (and, with [`PasswordHash::none`], `clear_password`).
    pub fn set_password(&self, name: &str, hash: PasswordHash) -> Result<(), AdminError> {
        self.update_user(name, |u| u.hash = hash)
    }

    /// `set_user_tags`.
    pub fn set_tags(&self, name: &str, tags: Vec<String>) -> Result<(), AdminError> {
        self.update_user(name, |u| u.tags = tags)
    }

    fn update_user(&self, name: &str, f: impl FnOnce(&mut User)) -> Result<(), AdminError> {
        let mut st = self.write();
        let Some(user) = st.users.get_mut(name) else {
            return Err(AdminError::NoSuchUser(name.into()));
        };
        f(user);
        self.persist([AccessChange::Put(user_record(user))]);
        Ok(())
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<User> {
        self.read().users.values().cloned().collect()
    }

    /// True if `name` is a user.
    pub fn has_user(&self, name: &str) -> bool {
        self.read().users.contains_key(name)
    }

    // ---- vhosts (their exchanges and queues are the broker's: see `Broker::add_vhost`)

    /// Registers a vhost (idempotent: an existing one keeps its metadata unless `info` differs).
    pub fn add_vhost(&self, mut info: VHostInfo) {
        let mut st = self.write();
        if let Some(old) = st.vhosts.get(&info.name) {
            // An update does not change who created it.
            info.created_by = old.created_by.clone();
            if *old == info {
                return;
            }
        }
        self.persist([AccessChange::Put(AccessRecord::VHost {
            name: info.name.clone(),
            description: info.description.clone(),
            tags: info.tags.clone(),
            tracing: info.tracing,
            default_queue_type: info.default_queue_type.clone(),
            created_by: info.created_by.clone(),
        })]);
        st.vhosts.insert(info.name.clone(), info);
    }

    /// Forgets a vhost and every permission in it.
    pub fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        let mut st = self.write();
        let Some(info) = st.vhosts.remove(name) else {
            return Err(AdminError::NoSuchVHost(name.into()));
        };
        let mut changes = vec![AccessChange::Delete(AccessRecord::VHost {
            name: info.name,
            description: String::new(),
            tags: Vec::new(),
            tracing: false,
            default_queue_type: None,
            created_by: String::new(),
        })];
        if st.vhost_limits.remove(name).is_some() {
            changes.push(AccessChange::Delete(AccessRecord::VhostLimits {
                vhost: name.into(),
                limits: Limits::new(),
            }));
        }
        for user in st
            .permissions
            .remove(name)
            .into_iter()
            .flat_map(|m| m.into_keys())
        {
            changes.push(AccessChange::Delete(permission_key(&user, name)));
        }
        for (user, xs) in st.topic_permissions.remove(name).into_iter().flatten() {
            for x in xs.into_keys() {
                changes.push(AccessChange::Delete(topic_key(&user, name, &x)));
            }
        }
        self.persist(changes);
        Ok(())
    }

    /// Every vhost, by name.
    pub fn vhosts(&self) -> Vec<VHostInfo> {
        self.read().vhosts.values().cloned().collect()
    }

    /// Who created vhost `name`: a user, [`CLI_USER`], or [`INTERNAL_USER`] (the broker, or
    /// not known).
    pub fn vhost_creator(&self, name: &str) -> String {
        match self.read().vhosts.get(name) {
            Some(v) if !v.created_by.is_empty() => v.created_by.clone(),
            _ => INTERNAL_USER.to_string(),
        }
    }

    /// True if `name` is a vhost.
    pub fn has_vhost(&self, name: &str) -> bool {
        self.read().vhosts.contains_key(name)
    }

    // ---- limits

    /// A limit in force (a non-negative value) of a vhost.
    pub fn vhost_limit(&self, vhost: &str, name: &str) -> Option<u64> {
        let v = *self.read().vhost_limits.get(vhost)?.get(name)?;
        u64::try_from(v).ok()
    }

    /// A limit in force (a non-negative value) of a user.
    pub fn user_limit(&self, user: &str, name: &str) -> Option<u64> {
        let v = *self.read().user_limits.get(user)?.get(name)?;
        u64::try_from(v).ok()
    }

    /// `set_vhost_limits` (replaces the vhost's limits).
    pub fn set_vhost_limits(&self, vhost: &str, limits: Limits) -> Result<(), AdminError> {
        let mut st = self.write();
        if !st.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVHost(vhost.into()));
        }
        self.persist([AccessChange::Put(AccessRecord::VhostLimits {
            vhost: vhost.into(),
            limits: limits.clone(),
        })]);
        st.vhost_limits.insert(vhost.into(), limits);
        Ok(())
    }

    /// `clear_vhost_limits`.
    pub fn clear_vhost_limits(&self, vhost: &str) -> Result<(), AdminError> {
        self.set_vhost_limits(vhost, Limits::new())
    }

    /// A vhost's limits.
    pub fn vhost_limits(&self, vhost: &str) -> Limits {
        self.read()
            .vhost_limits
            .get(vhost)
            .cloned()
            .unwrap_or_default()
    }

    /// `set_user_limits`: sets the given limits, keeping the others.
    pub fn set_user_limits(&self, user: &str, limits: Limits) -> Result<(), AdminError> {
        let mut st = self.write();
        if !st.users.contains_key(user) {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        let merged = st.user_limits.entry(user.into()).or_default();
        merged.extend(limits);
        let record = AccessRecord::UserLimits {
            user: user.into(),
            limits: merged.clone(),
        };
        self.persist([AccessChange::Put(record)]);
        Ok(())
    }

    /// `clear_user_limits USER NAME|all`.
    pub fn clear_user_limits(&self, user: &str, name: &str) -> Result<(), AdminError> {
        let mut st = self.write();
        if !st.users.contains_key(user) {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        let limits = st.user_limits.entry(user.into()).or_default();
        if name == "all" {
            limits.clear();
        } else {
            limits.remove(name);
        }
        let record = AccessRecord::UserLimits {
            user: user.into(),
            limits: limits.clone(),
        };
        self.persist([AccessChange::Put(record)]);
        Ok(())
    }

    /// A user's limits.
    pub fn user_limits(&self, user: &str) -> Limits {
        self.read()
            .user_limits
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    // ---- permissions

    /// `set_permissions`.
    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AdminError> {
        let p = Permission::new(configure, write, read).map_err(AdminError::Invalid)?;
        let mut st = self.write();
        st.check_user_vhost(user, vhost)?;
        self.persist([AccessChange::Put(AccessRecord::Permission {
            user: user.into(),
            vhost: vhost.into(),
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })]);
        st.permissions
            .entry(vhost.into())
            .or_default()
            .insert(user.into(), Arc::new(p));
        Ok(())
    }

    /// `clear_permissions`.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        let mut st = self.write();
        st.check_user_vhost(user, vhost)?;
        if let Some(users) = st.permissions.get_mut(vhost) {
            if users.remove(user).is_some() {
                self.persist([AccessChange::Delete(permission_key(user, vhost))]);
            }
        }
        Ok(())
    }

    /// Permissions as (user, vhost, permission), in `vhost` or of `user` if given.
    pub fn permissions(
        &self,
        vhost: Option<&str>,
        user: Option<&str>,
    ) -> Vec<(String, String, Arc<Permission>)> {
        let st = self.read();
        let mut out = Vec::new();
        for (v, users) in &st.permissions {
            if vhost.is_some_and(|want| want != v) {
                continue;
            }
            for (u, p) in users {
                if user.is_none_or(|want| want == u) {
                    out.push((u.clone(), v.clone(), p.clone()));
                }
            }
        }
        out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        out
    }

    /// `set_topic_permissions`.
    pub fn set_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AdminError> {
        let p = TopicPermission::new(exchange, write, read, user, vhost)
            .map_err(AdminError::Invalid)?;
        let mut st = self.write();
        st.check_user_vhost(user, vhost)?;
        self.persist([AccessChange::Put(AccessRecord::TopicPermission {
            user: user.into(),
            vhost: vhost.into(),
            exchange: exchange.into(),
            write: write.into(),
            read: read.into(),
        })]);
        st.topic_permissions
            .entry(vhost.into())
            .or_default()
            .entry(user.into())
            .or_default()
            .insert(exchange.into(), Arc::new(p));
        Ok(())
    }

    /// `clear_topic_permissions` (of one exchange, or all of the user's in the vhost).
    pub fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AdminError> {
        let mut st = self.write();
        st.check_user_vhost(user, vhost)?;
        let mut changes = Vec::new();
        if let Some(xs) = st
            .topic_permissions
            .get_mut(vhost)
            .and_then(|u| u.get_mut(user))
        {
            let gone: Vec<String> = xs
                .keys()
                .filter(|x| exchange.is_none_or(|want| want == x.as_str()))
                .cloned()
                .collect();
            for x in gone {
                xs.remove(&x);
                changes.push(AccessChange::Delete(topic_key(user, vhost, &x)));
            }
        }
        self.persist(changes);
        Ok(())
    }

    /// Topic permissions as (user, vhost, permission), in `vhost` or of `user` if given.
    pub fn topic_permissions(
        &self,
        vhost: Option<&str>,
        user: Option<&str>,
    ) -> Vec<(String, String, Arc<TopicPermission>)> {
        let st = self.read();
        let mut out = Vec::new();
        for (v, users) in &st.topic_permissions {
            if vhost.is_some_and(|want| want != v) {
                continue;
            }
            for (u, xs) in users {
                if user.is_none_or(|want| want == u) {
                    out.extend(xs.values().map(|p| (u.clone(), v.clone(), p.clone())));
                }
            }
        }
        out.sort_by(|a, b| (&a.1, &a.0, &a.2.exchange).cmp(&(&b.1, &b.0, &b.2.exchange)));
        out
    }
}

impl Registry {
    /// The grant's user's topic permission on `exchange` in its vhost, if there is one.
    fn topic_entry(&self, g: &Grant, exchange: &str) -> Option<&Arc<TopicPermission>> {
        self.topic_permissions
            .get(&*g.vhost)?
            .get(&*g.user)?
            .get(exchange)
    }

    fn check_user_vhost(&self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVHost(vhost.into()));
        }
        if !self.users.contains_key(user) {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        Ok(())
    }
}

enum AccessChange {
    Put(AccessRecord),
    Delete(AccessRecord),
}

fn user_record(u: &User) -> AccessRecord {
    AccessRecord::User {
        name: u.name.clone(),
        password_hash: u.hash.to_base64(),
        hashing_algorithm: u.hash.algorithm.name().into(),
        tags: u.tags.clone(),
    }
}

fn permission_key(user: &str, vhost: &str) -> AccessRecord {
    AccessRecord::Permission {
        user: user.into(),
        vhost: vhost.into(),
        configure: String::new(),
        write: String::new(),
        read: String::new(),
    }
}

fn topic_key(user: &str, vhost: &str, exchange: &str) -> AccessRecord {
    AccessRecord::TopicPermission {
        user: user.into(),
        vhost: vhost.into(),
        exchange: exchange.into(),
        write: String::new(),
        read: String::new(),
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// What resource a check is about, for the refusal's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// An exchange (`""`: the default exchange, `amq.default`).
    Exchange,
    /// A queue.
    Queue,
}

impl Resource {
    /// The word RabbitMQ's texts use for it.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        }
    }
}

/// A connection's (or another caller's) standing in one vhost: its user, checked against the
/// permissions in force at each call.
#[derive(Debug, Clone)]
pub struct Grant {
    access: Arc<AccessControl>,
    user: Arc<str>,
    vhost: Arc<str>,
    /// The user was tagged `impersonator` when the connection logged in.
    impersonator: bool,
}

impl Grant {
    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// 403 unless the user has `access` to `name`, a resource of kind `resource`.
    pub fn check(&self, access: Access, resource: Resource, name: &str) -> AmqpResult<()> {
        let allowed = self
            .access
            .read()
            .permissions
            .get(&*self.vhost)
            .and_then(|u| u.get(&*self.user))
            .is_some_and(|p| p.allows(access, name));
        if allowed {
            Ok(())
        } else {
            Err(reply_text::access_refused(
                resource.name(),
                name,
                &self.vhost,
                &self.user,
            ))
        }
    }

    /// 403 unless the routing (or binding) `key` is allowed on the topic exchange `exchange` for
    /// `access` (write: publish; read: bind from it). An exchange without a topic permission
    /// entry for the user is unrestricted.
    pub fn check_topic(&self, access: Access, exchange: &str, key: &str) -> AmqpResult<()> {
        let st = self.access.read();
        let Some(p) = st.topic_entry(self, exchange) else {
            return Ok(());
        };
        let ok = match access {
            Access::Write => p.write.matches(key),
            _ => p.read.matches(key),
        };
        if ok {
            Ok(())
        } else {
            Err(reply_text::topic_access_refused(
                key,
                exchange,
                &self.vhost,
                &self.user,
            ))
        }
    }
}

/// A channel's memory of its last allowed publish target: the exchange, the permissions'
/// generation it was checked at, and whether a topic permission entry exists for it.
#[derive(Debug, Default)]
pub struct PublishCache {
    exchange: String,
    generation: u64,
    topic_entry: bool,
}

/// Who calls a vhost operation: a connection (owner of exclusive queues) with its grant, or the
/// broker itself (recovery, definitions import by an administrator), which is not checked.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The calling connection's id.
    pub connection: Option<u64>,
    /// The caller's permissions; `None` for the broker itself.
    pub grant: Option<Grant>,
}

impl Caller {
    /// The broker itself: any queue, no permission checks.
    pub fn internal() -> Self {
        Caller::default()
    }

    /// A connection that is not checked (tests).
    #[cfg(test)]
    pub fn connection(id: u64) -> Self {
        Caller {
            connection: Some(id),
            grant: None,
        }
    }

    /// 403 unless the caller has `access` to `name`.
    pub fn check(&self, access: Access, resource: Resource, name: &str) -> AmqpResult<()> {
        match &self.grant {
            Some(g) => g.check(access, resource, name),
            None => Ok(()),
        }
    }

    /// basic.publish's permission checks on `exchange` (write, then for a topic exchange the
    /// routing key), remembering in `cache` that the write was allowed, so that a run of
    /// publishes to one exchange checks once until the permissions change.
    pub fn check_publish(
        &self,
        exchange: &str,
        topic: bool,
        routing_key: &str,
        cache: &mut PublishCache,
    ) -> AmqpResult<()> {
        let Some(g) = &self.grant else {
            return Ok(());
        };
        let generation = g.access.generation.load(Ordering::Acquire);
        if !(cache.generation == generation && cache.exchange == exchange) {
            g.check(Access::Write, Resource::Exchange, exchange)?;
            cache.topic_entry = g.access.read().topic_entry(g, exchange).is_some();
            cache.exchange.clear();
            cache.exchange.push_str(exchange);
            cache.generation = generation;
        }
        if topic && cache.topic_entry {
            g.check_topic(Access::Write, exchange, routing_key)?;
        }
        Ok(())
    }

    /// True if the caller may set another user's name in `user_id` (the broker itself, or a
    /// user tagged `impersonator` when it logged in, as in RabbitMQ).
    pub fn may_impersonate(&self) -> bool {
        self.grant.as_ref().is_none_or(|g| g.impersonator)
    }

    /// 403 unless the topic key is allowed (see [`Grant::check_topic`]).
    pub fn check_topic(&self, access: Access, exchange: &str, key: &str) -> AmqpResult<()> {
        match &self.grant {
            Some(g) => g.check_topic(access, exchange, key),
            None => Ok(()),
        }
    }
}
