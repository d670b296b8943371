use super::model::*;
use super::privileges::*;
use super::*;

fn boot() -> SecurityState {
    let mut s = SecurityState::default();
    assert!(
        s.apply(SecurityOp::Bootstrap {
            root_hash: "h-root".into()
        })
        .unwrap()
    );
    s
}

fn grant(role: &str, t: ObjectType, name: &str, p: Privilege) -> Grant {
    Grant {
        role: role.into(),
        object_type: t,
        object_name: name.into(),
        db_name: DEFAULT_DB.into(),
        privilege: p,
        grantor: ROOT_USER.into(),
    }
}

fn user(s: &mut SecurityState, name: &str) {
    s.apply(SecurityOp::CreateUser {
        name: name.into(),
        password_hash: format!("h-{name}"),
    })
    .unwrap();
}

/// Root, and a user `alice` holding a fresh role `r` with no grants.
fn alice_with_role_r() -> SecurityState {
    let mut s = boot();
    user(&mut s, "alice");
    s.apply(SecurityOp::CreateRole { name: "r".into() })
        .unwrap();
    s.apply(SecurityOp::AddUserToRole {
        user: "alice".into(),
        role: "r".into(),
    })
    .unwrap();
    s
}

fn on(t: ObjectType, p: Privilege, obj: &str) -> Requirement {
    let r = Requirement::new(t, p, "");
    if obj.is_empty() { r } else { r.on(obj) }
}

#[test]
fn bootstrap_creates_root_and_public_grants_once() {
    let mut s = boot();
    assert!(s.users.contains_key(ROOT_USER));
    assert_eq!(s.grants.len(), 3);
    assert!(
        !s.apply(SecurityOp::Bootstrap {
            root_hash: "other".into()
        })
        .unwrap(),
        "a second bootstrap keeps the root password"
    );
    assert_eq!(s.users[ROOT_USER].password_hash, "h-root");
}

#[test]
fn user_names_and_passwords_follow_milvus_rules() {
    for bad in ["", "1abc", "a-b", "a b", &"x".repeat(33)] {
        let e = validate_username(bad).unwrap_err();
        assert!(
            matches!(e, SecurityError::Invalid { ref field, .. } if field == "username"),
            "{bad}: {e}"
        );
    }
    validate_username("alice_01").unwrap();
    assert!(validate_password("12345").is_err());
    validate_password("123456").unwrap();
    assert!(validate_password(&"p".repeat(257)).is_err());
    let e = validate_password("abc").unwrap_err().to_string();
    assert!(
        e.contains("password") && e.contains('6') && e.contains('3'),
        "{e}"
    );
}

#[test]
fn users_and_roles_lifecycle() {
    let mut s = boot();
    user(&mut s, "alice");
    assert_eq!(
        s.apply(SecurityOp::CreateUser {
            name: "alice".into(),
            password_hash: "x".into()
        }),
        Err(SecurityError::UserExists("alice".into()))
    );
    assert!(matches!(
        s.apply(SecurityOp::DeleteUser {
            name: "root".into()
        }),
        Err(SecurityError::NotAllowed(_))
    ));
    s.apply(SecurityOp::CreateRole {
        name: "reader".into(),
    })
    .unwrap();
    assert!(matches!(
        s.apply(SecurityOp::CreateRole {
            name: "admin".into()
        }),
        Err(SecurityError::RoleExists(_))
    ));
    s.apply(SecurityOp::AddUserToRole {
        user: "alice".into(),
        role: "reader".into(),
    })
    .unwrap();
    assert_eq!(s.users_of("reader"), vec!["alice".to_string()]);
    assert_eq!(
        s.apply(SecurityOp::AddUserToRole {
            user: "bob".into(),
            role: "reader".into()
        }),
        Err(SecurityError::UserNotFound("bob".into()))
    );
    assert_eq!(
        s.apply(SecurityOp::AddUserToRole {
            user: "alice".into(),
            role: "nope".into()
        }),
        Err(SecurityError::RoleNotFound("nope".into()))
    );
    // A role still in use is only dropped by force, which also removes it from its users.
    s.apply(SecurityOp::Grant(grant(
        "reader",
        ObjectType::Collection,
        "c",
        Privilege::Search,
    )))
    .unwrap();
    assert!(matches!(
        s.apply(SecurityOp::DropRole {
            name: "reader".into(),
            force: false
        }),
        Err(SecurityError::NotAllowed(_))
    ));
    s.apply(SecurityOp::DropRole {
        name: "reader".into(),
        force: true,
    })
    .unwrap();
    assert!(s.users["alice"].roles.is_empty());
    assert!(s.grants.iter().all(|g| g.role != "reader"));
    for builtin in ["admin", "public"] {
        assert!(matches!(
            s.apply(SecurityOp::DropRole {
                name: builtin.into(),
                force: true
            }),
            Err(SecurityError::NotAllowed(_))
        ));
    }
    // Deleting a missing user succeeds and changes nothing.
    assert!(
        !s.apply(SecurityOp::DeleteUser {
            name: "ghost".into()
        })
        .unwrap()
    );
}

#[test]
fn a_failed_operation_changes_nothing() {
    let mut s = boot();
    user(&mut s, "alice");
    let before = s.clone();
    assert!(
        s.apply(SecurityOp::Grant(grant(
            "public",
            ObjectType::Global,
            "*",
            Privilege::Search
        )))
        .is_err(),
        "Search is a collection privilege"
    );
    assert!(
        s.apply(SecurityOp::CreateRole { name: "9x".into() })
            .is_err()
    );
    assert_eq!(s, before);
}

#[test]
fn privileges_parse_like_milvus_names() {
    assert_eq!(Privilege::parse("Search").unwrap(), Privilege::Search);
    assert_eq!(Privilege::parse("PrivilegeLoad").unwrap(), Privilege::Load);
    assert_eq!(Privilege::parse("*").unwrap(), Privilege::All);
    let e = Privilege::parse("Fly").unwrap_err().to_string();
    assert!(e.contains("privilege") && e.contains("Fly"), "{e}");
    assert!(ObjectType::parse("Table").is_err());
}

#[test]
fn checks_follow_grants_roles_and_wildcards() {
    let mut s = alice_with_role_r();
    let search_c = on(ObjectType::Collection, Privilege::Search, "c");
    let e = check(&s, "alice", &search_c).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("alice") && text.contains("Search") && text.contains("`c`"),
        "{text}"
    );
    // Root needs no grant.
    check(&s, "root", &search_c).unwrap();
    // A grant on the collection allows it, and only it.
    s.apply(SecurityOp::Grant(grant(
        "r",
        ObjectType::Collection,
        "c",
        Privilege::Search,
    )))
    .unwrap();
    check(&s, "alice", &search_c).unwrap();
    assert!(
        check(
            &s,
            "alice",
            &on(ObjectType::Collection, Privilege::Search, "d")
        )
        .is_err()
    );
    assert!(
        check(
            &s,
            "alice",
            &on(ObjectType::Collection, Privilege::Insert, "c")
        )
        .is_err()
    );
    // Another database is another object.
    let mut other_db = Requirement::new(ObjectType::Collection, Privilege::Search, "db2");
    other_db = other_db.on("c");
    assert!(check(&s, "alice", &other_db).is_err());
    // `*` covers every collection, `All` every privilege.
    s.apply(SecurityOp::Grant(grant(
        "r",
        ObjectType::Collection,
        "*",
        Privilege::All,
    )))
    .unwrap();
    check(
        &s,
        "alice",
        &on(ObjectType::Collection, Privilege::Insert, "d"),
    )
    .unwrap();
    // Public's defaults hold for everyone; revoking them takes them away.
    let describe = on(ObjectType::Global, Privilege::DescribeCollection, "");
    check(&s, "alice", &describe).unwrap();
    // (public's defaults hold in every database, as in Milvus)
    let public_describe = Grant {
        db_name: ANY_OBJECT.into(),
        ..grant(
            "public",
            ObjectType::Global,
            "*",
            Privilege::DescribeCollection,
        )
    };
    assert!(s.apply(SecurityOp::Revoke(public_describe)).unwrap());
    assert!(check(&s, "alice", &describe).is_err());
    // The admin role holds everything.
    s.apply(SecurityOp::AddUserToRole {
        user: "alice".into(),
        role: "admin".into(),
    })
    .unwrap();
    check(&s, "alice", &describe).unwrap();
    // Everyone may read and update themselves, nobody else.
    user(&mut s, "bob");
    check(
        &s,
        "bob",
        &on(ObjectType::User, Privilege::UpdateUser, "bob"),
    )
    .unwrap();
    assert!(
        check(
            &s,
            "bob",
            &on(ObjectType::User, Privilege::UpdateUser, "alice")
        )
        .is_err()
    );
    // A deleted user holds nothing.
    s.apply(SecurityOp::DeleteUser { name: "bob".into() })
        .unwrap();
    assert_eq!(
        check(
            &s,
            "bob",
            &on(ObjectType::User, Privilege::UpdateUser, "bob")
        ),
        Err(SecurityError::UserNotFound("bob".into()))
    );
}

#[test]
fn several_objects_all_need_the_privilege() {
    let mut s = alice_with_role_r();
    s.apply(SecurityOp::Grant(grant(
        "r",
        ObjectType::Collection,
        "a",
        Privilege::Flush,
    )))
    .unwrap();
    let both = on(ObjectType::Collection, Privilege::Flush, "a").on("b");
    let e = check(&s, "alice", &both).unwrap_err().to_string();
    assert!(e.contains("`b`"), "{e}");
}

#[test]
fn credentials_decode_as_pymilvus_sends_them() {
    let v = credentials::encode("root", "Mil:vus");
    let c = credentials::parse(Some(v.as_bytes())).unwrap();
    assert_eq!((c.user.as_str(), c.password.as_str()), ("root", "Mil:vus"));
    assert!(!c.to_string().contains("Mil:vus"));
    for bad in [None, Some(&b"%%%"[..]), Some(b"YWJj")] {
        assert!(matches!(
            credentials::parse(bad),
            Err(SecurityError::Unauthenticated(_))
        ));
    }
}
