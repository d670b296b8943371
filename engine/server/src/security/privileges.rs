//! Object types and privileges as Milvus names them, what each built-in role holds, and the
//! check of one required privilege against a user's grants.
//!
//! Which privilege an RPC needs comes from Milvus' own protocol: the `privilege_ext_obj` option
//! on each request message of milvus-proto (pymilvus ships it in its descriptors); the proxy
//! turns a request into a [`Requirement`] (`crate::proxy::guard`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::{
    ADMIN_ROLE, ANY_OBJECT, Grant, PUBLIC_ROLE, ROOT_USER, SecurityState, db_or_default,
};

/// Privileges a grant of another privilege also gives: watching a load needs no more than
/// loading (Milvus 2.3 checks Load for GetLoadState), a flush no more than flushing (pymilvus'
/// `flush` also calls GetFlushState).
fn implied_by(p: Privilege) -> &'static [Privilege] {
    match p {
        Privilege::GetLoadState | Privilege::GetLoadingProgress => &[Privilege::Load],
        Privilege::GetFlushState => &[Privilege::Flush],
        _ => &[],
    }
}
use super::SecurityError;

/// What a privilege is granted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectType {
    Global,
    Collection,
    User,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Global => "Global",
            ObjectType::Collection => "Collection",
            ObjectType::User => "User",
        }
    }

    pub fn parse(s: &str) -> Result<Self, SecurityError> {
        match s {
            "Global" => Ok(ObjectType::Global),
            "Collection" => Ok(ObjectType::Collection),
            "User" => Ok(ObjectType::User),
            other => Err(SecurityError::Invalid {
                field: "object_type".into(),
                message: format!(
                    "invalid object type {other:?}: expected one of Global, Collection, User"
                ),
            }),
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! privileges {
    ($($v:ident: [$($obj:ident),*];)*) => {
        /// Milvus' object privileges (`commonpb.ObjectPrivilege` without the `Privilege` prefix),
        /// each with the object types it may be granted on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Privilege { $($v,)* }

        impl Privilege {
            pub const ALL: &'static [Privilege] = &[$(Privilege::$v,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Privilege::$v => stringify!($v),)* }
            }

            /// The object types this privilege may be granted on.
            pub fn objects(self) -> &'static [ObjectType] {
                match self { $(Privilege::$v => &[$(ObjectType::$obj),*],)* }
            }
        }
    };
}

privileges! {
    All: [Global, Collection, User];
    // Collection
    Load: [Collection];
    Release: [Collection];
    Insert: [Collection];
    Delete: [Collection];
    Upsert: [Collection];
    Search: [Collection];
    Query: [Collection];
    Flush: [Collection];
    GetFlushState: [Collection];
    GetStatistics: [Collection];
    CreateIndex: [Collection];
    DropIndex: [Collection];
    IndexDetail: [Collection];
    Compaction: [Collection];
    Import: [Collection];
    LoadBalance: [Collection];
    CreatePartition: [Collection];
    DropPartition: [Collection];
    ShowPartitions: [Collection];
    HasPartition: [Collection];
    GetLoadingProgress: [Collection];
    GetLoadState: [Collection];
    // Global
    CreateCollection: [Global];
    DropCollection: [Global];
    DescribeCollection: [Global];
    ShowCollections: [Global];
    RenameCollection: [Global];
    FlushAll: [Global];
    CreateOwnership: [Global];
    DropOwnership: [Global];
    SelectOwnership: [Global];
    ManageOwnership: [Global];
    CreateAlias: [Global];
    DropAlias: [Global];
    DescribeAlias: [Global];
    ListAliases: [Global];
    CreateDatabase: [Global];
    DropDatabase: [Global];
    ListDatabases: [Global];
    AlterDatabase: [Global];
    DescribeDatabase: [Global];
    CreateResourceGroup: [Global];
    DropResourceGroup: [Global];
    DescribeResourceGroup: [Global];
    ListResourceGroups: [Global];
    TransferNode: [Global];
    TransferReplica: [Global];
    // User
    UpdateUser: [User];
    SelectUser: [User];
}

impl Privilege {
    /// A privilege as clients name it: `Search`, `PrivilegeSearch`; `*` and `All` are every
    /// privilege.
    pub fn parse(s: &str) -> Result<Self, SecurityError> {
        let name = s.strip_prefix("Privilege").unwrap_or(s);
        if name == "*" {
            return Ok(Privilege::All);
        }
        Privilege::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| SecurityError::Invalid {
                field: "privilege".into(),
                message: format!("unknown privilege {s:?}"),
            })
    }

    /// Refuse a grant of this privilege on an object type it does not apply to.
    pub fn check_object(self, object_type: ObjectType) -> Result<(), SecurityError> {
        if self.objects().contains(&object_type) {
            Ok(())
        } else {
            Err(SecurityError::Invalid {
                field: "privilege".into(),
                message: format!(
                    "privilege {self} cannot be granted on object type {object_type} (it applies to {})",
                    self.objects()
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the `public` role holds on a fresh install (as Milvus grants it): describe and list
/// collections, and read index details, on every object of every database.
pub fn public_defaults() -> Vec<Grant> {
    let grant = |object_type, privilege| Grant {
        role: PUBLIC_ROLE.into(),
        object_type,
        object_name: ANY_OBJECT.into(),
        db_name: ANY_OBJECT.into(),
        privilege,
        grantor: ROOT_USER.into(),
    };
    vec![
        grant(ObjectType::Global, Privilege::DescribeCollection),
        grant(ObjectType::Global, Privilege::ShowCollections),
        grant(ObjectType::Collection, Privilege::IndexDetail),
    ]
}

/// The privilege one request needs: on `objects` (collection names, a user name; empty for
/// Global) of `object_type` in database `db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub object_type: ObjectType,
    pub privilege: Privilege,
    pub objects: Vec<String>,
    pub db: String,
}

impl Requirement {
    pub fn new(object_type: ObjectType, privilege: Privilege, db: &str) -> Self {
        Requirement {
            object_type,
            privilege,
            objects: Vec::new(),
            db: db_or_default(db),
        }
    }

    pub fn on(mut self, object: impl Into<String>) -> Self {
        self.objects.push(object.into());
        self
    }
}

/// Whether `user` holds `req`: root and holders of `admin` hold everything; a user may always
/// read and change itself (User objects named after the caller); otherwise one of the user's
/// roles (plus `public`) must hold the privilege (or `All`) on each object (or on `*`) of the
/// database.
pub fn check(state: &SecurityState, user: &str, req: &Requirement) -> Result<(), SecurityError> {
    if user == ROOT_USER {
        return Ok(());
    }
    let Some(record) = state.users.get(user) else {
        return Err(SecurityError::UserNotFound(user.to_string()));
    };
    if record.roles.contains(ADMIN_ROLE) {
        return Ok(());
    }
    if req.object_type == ObjectType::User && req.objects.iter().all(|o| o == user) {
        return Ok(());
    }
    let holds = |object: &str| {
        state.grants.iter().any(|g| {
            (g.role == PUBLIC_ROLE || record.roles.contains(&g.role))
                && g.object_type == req.object_type
                && (g.db_name == req.db || g.db_name == ANY_OBJECT)
                && (g.privilege == req.privilege
                    || g.privilege == Privilege::All
                    || implied_by(req.privilege).contains(&g.privilege))
                && (req.object_type == ObjectType::Global
                    || g.object_name == ANY_OBJECT
                    || g.object_name == object)
        })
    };
    let objects: Vec<&str> = if req.objects.is_empty() {
        vec![ANY_OBJECT]
    } else {
        req.objects.iter().map(String::as_str).collect()
    };
    match objects.into_iter().find(|o| !holds(o)) {
        None => Ok(()),
        Some(object) => Err(SecurityError::PermissionDenied {
            user: user.to_string(),
            privilege: req.privilege,
            object_type: req.object_type,
            object: object.to_string(),
            db: req.db.clone(),
        }),
    }
}

/// Whether `user` holds any privilege at all on collection `name` (what ShowCollections lists
/// for a user who may not list every collection).
pub fn holds_any_on_collection(state: &SecurityState, user: &str, name: &str, db: &str) -> bool {
    if user == ROOT_USER {
        return true;
    }
    let Some(record) = state.users.get(user) else {
        return false;
    };
    if record.roles.contains(ADMIN_ROLE) {
        return true;
    }
    state.grants.iter().any(|g| {
        (g.role == PUBLIC_ROLE || record.roles.contains(&g.role))
            && g.object_type == ObjectType::Collection
            && g.object_name != ANY_OBJECT
            && g.object_name == name
            && (g.db_name == db || g.db_name == ANY_OBJECT)
    })
}
