//! Filter expressions: per-construct evaluation over concrete rows, primary-key detection,
//! templates, and error variants/positions.

use std::collections::HashMap;

use ferrovus_core::expr::{self, ExprError, Plan, RowAccess};
use ferrovus_core::schema::{CollectionSchema, DataType, FieldSchema};
use ferrovus_core::value::{PrimaryKey, Value, ValueRef};
use serde_json::json;

fn schema(dynamic: bool) -> CollectionSchema {
    let mut opt = FieldSchema::new("opt", DataType::Int32);
    opt.nullable = true;
    CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("age", DataType::Int64),
            FieldSchema::new("i8", DataType::Int8),
            FieldSchema::new("score", DataType::Float),
            FieldSchema::new("price", DataType::Double),
            FieldSchema::new("title", DataType::VarChar).with_max_length(256),
            FieldSchema::new("flag", DataType::Bool),
            FieldSchema::new("meta", DataType::Json),
            FieldSchema::new("v", DataType::FloatVector).with_dim(4),
            opt,
        ],
        enable_dynamic_field: dynamic,
    }
    .validate_and_normalize()
    .unwrap()
}

/// A row as values in schema order (missing = null).
struct Row(Vec<Value>);

impl RowAccess for Row {
    fn get(&self, i: usize) -> ValueRef<'_> {
        self.0.get(i).map_or(ValueRef::Null, Value::as_ref)
    }
}

/// Build a row from a JSON object keyed by field name; keys that are not fields go to `$meta`.
fn row(s: &CollectionSchema, obj: serde_json::Value) -> Row {
    let mut vals = vec![Value::Null; s.fields.len()];
    let mut dynamic = serde_json::Map::new();
    for (k, v) in obj.as_object().unwrap() {
        match s.field_index(k) {
            Some(i) => {
                vals[i] = match (s.fields[i].data_type, v) {
                    (_, serde_json::Value::Null) => Value::Null,
                    (DataType::Json, v) => Value::Json(v.clone()),
                    (DataType::Bool, v) => Value::Bool(v.as_bool().unwrap()),
                    (DataType::VarChar, v) => Value::String(v.as_str().unwrap().to_string()),
                    (DataType::Float | DataType::Double, v) => Value::Float(v.as_f64().unwrap()),
                    (DataType::FloatVector, _) => Value::FloatVector(vec![0.0; 4]),
                    (_, v) => Value::Int(v.as_i64().unwrap()),
                }
            }
            None => {
                dynamic.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(d) = s.fields.iter().position(|f| f.is_dynamic) {
        vals[d] = Value::Json(serde_json::Value::Object(dynamic));
    }
    Row(vals)
}

fn dataset(s: &CollectionSchema) -> Vec<Row> {
    [
        json!({"id": 1, "age": 20, "i8": -5, "score": 1.5, "price": 10.0, "title": "apple pie", "flag": true,
               "meta": {"a": 1, "b": "x", "arr": [1, 2, 3], "nested": {"k": 10}}, "color": "red", "opt": 7}),
        json!({"id": 2, "age": 30, "i8": 0, "score": 2.0, "price": 20.5, "title": "banana split", "flag": false,
               "meta": {"a": 2.5, "b": "y", "arr": ["p", "q"], "nested": {"k": "10"}}, "color": "blue"}),
        json!({"id": 3, "age": 40, "i8": 5, "score": -1.0, "price": 0.0, "title": "50% off (a.b*c)", "flag": true,
               "meta": {"a": "1", "arr": [[1, 2], 3]}, "size": 3}),
        json!({"id": 4, "age": 50, "i8": 127, "score": 3.25, "price": 99.99, "title": "apricot", "flag": false,
               "meta": {"a": null, "b": true, "arr": []}, "color": "red", "size": 5.5, "opt": -1}),
        json!({"id": 5, "age": 60, "i8": -128, "score": 0.0, "price": 5.0, "title": "", "flag": true,
               "meta": [1, 2], "opt": 0}),
    ]
    .into_iter()
    .map(|o| row(s, o))
    .collect()
}

const NONE: Vec<i64> = Vec::new();

fn ids_of(plan: &Plan, rows: &[Row]) -> Vec<i64> {
    rows.iter()
        .filter(|r| plan.eval(*r))
        .map(|r| match r.0[0] {
            Value::Int(i) => i,
            _ => unreachable!(),
        })
        .collect()
}

/// Ids of the dataset rows matching `e` (dynamic field enabled).
fn ids(e: &str) -> Vec<i64> {
    let s = schema(true);
    let plan = expr::compile_str(e, &s).unwrap_or_else(|err| panic!("{e}: {err}"));
    // The canonical form must compile to a plan with the same results.
    let canon = expr::parse(e).unwrap().to_string();
    let plan2 = expr::compile_str(&canon, &s).unwrap_or_else(|err| panic!("{canon}: {err}"));
    let rows = dataset(&s);
    let got = ids_of(&plan, &rows);
    assert_eq!(
        got,
        ids_of(&plan2, &rows),
        "canonical form {canon} of {e} evaluates differently"
    );
    got
}

fn err(e: &str) -> ExprError {
    match expr::compile_str(e, &schema(false)) {
        Ok(_) => panic!("{e}: expected an error"),
        Err(err) => err,
    }
}

fn assert_syntax(e: &str, pos: usize, token: &str) {
    match err(e) {
        ExprError::Syntax {
            pos: p,
            token: t,
            message,
        } => {
            assert_eq!((p, t.as_str()), (pos, token), "{e}: {message}");
        }
        other => panic!("{e}: expected a syntax error, got {other:?}"),
    }
}

fn assert_type(e: &str, pos: usize, token: &str, needle: &str) {
    match err(e) {
        ExprError::Type {
            pos: p,
            token: t,
            message,
        } => {
            assert_eq!((p, t.as_str()), (pos, token), "{e}: {message}");
            assert!(
                message.contains(needle),
                "{e}: message {message:?} lacks {needle:?}"
            );
        }
        other => panic!("{e}: expected a type error, got {other:?}"),
    }
}

#[test]
fn expr_integer_comparisons() {
    assert_eq!(ids("age > 30"), vec![3, 4, 5]);
    assert_eq!(ids("age >= 30"), vec![2, 3, 4, 5]);
    assert_eq!(ids("30 < age"), vec![3, 4, 5]);
    assert_eq!(ids("30 >= age"), vec![1, 2]);
    assert_eq!(ids("age == 40"), vec![3]);
    assert_eq!(ids("age != 40"), vec![1, 2, 4, 5]);
    assert_eq!(ids("age <= 20"), vec![1]);
}

#[test]
fn expr_mixed_numeric_comparisons() {
    // An Int8 field against a float compares numerically.
    assert_eq!(ids("i8 > 0.5"), vec![3, 4]);
    assert_eq!(ids("i8 == 5.0"), vec![3]);
    assert_eq!(ids("i8 < -127.5"), vec![5]);
    assert_eq!(ids("i8 >= 1000"), Vec::<i64>::new());
    assert_eq!(ids("score >= 2"), vec![2, 4]);
    assert_eq!(ids("price == 0"), vec![3]);
    assert_eq!(ids("score == price"), NONE);
    assert_eq!(ids("age > price * 2"), vec![3, 5]);
}

#[test]
fn expr_string_and_bool_comparisons() {
    assert_eq!(ids(r#"title == "apricot""#), vec![4]);
    assert_eq!(ids("title == 'apricot'"), vec![4]);
    assert_eq!(ids(r#"title > "b""#), vec![2]);
    assert_eq!(ids("title == ''"), vec![5]);
    assert_eq!(ids(r#""apricot" == title"#), vec![4]);
    assert_eq!(ids("flag"), vec![1, 3, 5]);
    assert_eq!(ids("flag == false"), vec![2, 4]);
    assert_eq!(ids("flag != True"), vec![2, 4]);
    assert_eq!(ids("not flag"), vec![2, 4]);
    assert_eq!(ids("flag == TRUE"), vec![1, 3, 5]);
}

#[test]
fn expr_arithmetic() {
    assert_eq!(ids("age + 5 == 35"), vec![2]);
    assert_eq!(ids("age * 2 > 100"), vec![5]);
    assert_eq!(ids("age % 20 == 0"), vec![1, 3, 5]);
    assert_eq!(
        ids("age / 20 == 2"),
        vec![3, 4],
        "integer division truncates"
    );
    assert_eq!(ids("-age < -45"), vec![4, 5]);
    assert_eq!(ids("age - i8 == 25"), vec![1]);
    assert_eq!(ids("score * 2 == 3"), vec![1]);
    assert_eq!(ids("age + 0.5 > 40"), vec![3, 4, 5]);
    assert_eq!(ids("2 ** 3 == 8 and age < 30"), vec![1]);
    assert_eq!(ids("age == 2 * 10 + 20"), vec![3], "constants fold");
    assert_eq!(ids(r#"meta["a"] * 2 == 5"#), vec![2]);
    assert_eq!(ids("size + 1 > 4"), vec![4]);
}

#[test]
fn expr_chained_ranges() {
    assert_eq!(ids("30 < age < 50"), vec![3]);
    assert_eq!(ids("30 <= age <= 50"), vec![2, 3, 4]);
    assert_eq!(ids("50 >= age > 30"), vec![3, 4]);
    assert_eq!(ids("50 > age >= 30"), vec![2, 3]);
    assert_eq!(ids(r#"1 < meta["a"] < 3"#), vec![2]);
    assert_eq!(ids(r#""a" <= title < "b""#), vec![1, 4]);
    assert_eq!(ids("-1 < i8 <= 5.5"), vec![2, 3]);
    assert_eq!(ids("2 < size < 6"), vec![3, 4]);
    assert_eq!(ids("40 <= age <= 40"), vec![3]);
}

#[test]
fn expr_in_and_not_in() {
    assert_eq!(ids("age in [20, 40, 70]"), vec![1, 3]);
    assert_eq!(ids("age not in [20, 40]"), vec![2, 4, 5]);
    assert_eq!(ids("age IN [20.0, 30.5]"), vec![1]);
    assert_eq!(ids(r#"title in ["apricot", ""]"#), vec![4, 5]);
    assert_eq!(ids(r#"meta["a"] in [1, "1"]"#), vec![1, 3]);
    assert_eq!(ids(r#"meta["a"] not in [1]"#), vec![2, 3, 4, 5]);
    assert_eq!(ids("id in []"), NONE);
    assert_eq!(ids("id not in []"), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(r#"color in ["red"]"#), vec![1, 4]);
    let big: Vec<String> = (0..1000).map(|i| (i * 10).to_string()).collect();
    assert_eq!(
        ids(&format!("age in [{}]", big.join(", "))),
        vec![1, 2, 3, 4, 5]
    );
    let odd: Vec<String> = (0..1000).map(|i| (i * 20 + 10).to_string()).collect();
    assert_eq!(ids(&format!("age in [{}]", odd.join(","))), vec![2, 4]);
}

#[test]
fn expr_like_patterns() {
    assert_eq!(ids(r#"title like "ap%""#), vec![1, 4]);
    assert_eq!(ids(r#"title like "%pie""#), vec![1]);
    assert_eq!(ids(r#"title like "%an%""#), vec![2]);
    assert_eq!(ids(r#"title LIKE "a_r%""#), vec![4]);
    assert_eq!(ids(r#"title like "%""#), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(r#"title like """#), vec![5]);
    assert_eq!(ids(r#"title like "apple pie""#), vec![1]);
    // Regex metacharacters are plain characters; `\%` is a literal percent sign.
    assert_eq!(ids(r#"title like "%(a.b*c)""#), vec![3]);
    assert_eq!(ids(r#"title like "a.p%""#), NONE);
    assert_eq!(ids(r#"title like "50\\% off%""#), vec![3]);
    assert_eq!(ids(r#"title like r"50\% off%""#), vec![3]);
    assert_eq!(ids(r#"title like "5_\\%%""#), vec![3]);
    assert_eq!(ids(r#"title like "%.b*%""#), vec![3]);
    assert_eq!(ids(r#"title like "a%t""#), vec![4]);
    assert_eq!(ids(r#"meta["b"] like "x%""#), vec![1]);
    assert_eq!(ids(r#"color like "r%""#), vec![1, 4]);
}

#[test]
fn expr_json_paths() {
    assert_eq!(
        ids(r#"meta["nested"]["k"] == 10"#),
        vec![1],
        "a JSON string does not equal a number"
    );
    assert_eq!(ids(r#"meta["nested"]["k"] == "10""#), vec![2]);
    assert_eq!(ids(r#"meta['nested']['k'] >= 10"#), vec![1]);
    assert_eq!(ids(r#"meta["arr"][0] == 1"#), vec![1]);
    assert_eq!(ids(r#"meta["arr"]["0"] == 1"#), vec![1]);
    assert_eq!(ids(r#"meta["arr"][1] == "q""#), vec![2]);
    assert_eq!(ids(r#"meta["arr"][0][1] == 2"#), vec![3]);
    assert_eq!(ids(r#"meta["a"] > 1"#), vec![2]);
    assert_eq!(ids(r#"meta["a"] == 1"#), vec![1]);
    assert_eq!(ids(r#"meta["a"] == 1.0"#), vec![1]);
    // Missing keys, nulls and other types compare false, so `!=` (and `not ==`) is true for them.
    assert_eq!(ids(r#"meta["a"] != 1"#), vec![2, 3, 4, 5]);
    assert_eq!(ids(r#"not (meta["a"] == 1)"#), vec![2, 3, 4, 5]);
    assert_eq!(ids(r#"meta["missing"] < 1"#), NONE);
    assert_eq!(ids(r#"meta["b"] == true"#), vec![4]);
    assert_eq!(ids(r#"meta["arr"] == [1, 2, 3]"#), vec![1]);
    assert_eq!(ids(r#"meta["arr"] != [1, 2, 3]"#), vec![2, 3, 4, 5]);
    assert_eq!(ids(r#"meta == [1, 2]"#), vec![5]);
    assert_eq!(
        ids(r#"meta["a"]"#),
        NONE,
        "a JSON value is a predicate only when it is true"
    );
    assert_eq!(ids(r#"meta["b"]"#), vec![4]);
}

#[test]
fn expr_dynamic_keys() {
    assert_eq!(ids(r#"color == "red""#), vec![1, 4]);
    assert_eq!(ids(r#"$meta["color"] == "red""#), vec![1, 4]);
    assert_eq!(ids("size > 3"), vec![4]);
    assert_eq!(ids("size >= 3"), vec![3, 4]);
    assert_eq!(ids(r#"not (color == "red")"#), vec![2, 3, 5]);
    assert_eq!(ids(r#"color != "red""#), vec![2, 3, 5]);
    assert_eq!(ids("exists color"), vec![1, 2, 4]);
    assert_eq!(ids("color is null"), vec![3, 5]);
    assert_eq!(ids("color IS NOT NULL"), vec![1, 2, 4]);
    assert_eq!(ids(r#"color["x"] == 1"#), NONE);
}

#[test]
fn expr_exists_and_is_null() {
    assert_eq!(ids(r#"exists meta["b"]"#), vec![1, 2, 4]);
    assert_eq!(ids(r#"EXISTS meta["nested"]["k"]"#), vec![1, 2]);
    // An empty array (or null, or an object of empties) does not "exist", as in Milvus.
    assert_eq!(ids(r#"exists meta["arr"]"#), vec![1, 2, 3]);
    assert_eq!(ids(r#"meta["a"] is null"#), vec![4, 5]);
    assert_eq!(ids(r#"meta["a"] is not null"#), vec![1, 2, 3]);
    assert_eq!(ids("opt is null"), vec![2, 3]);
    assert_eq!(ids("opt is not null"), vec![1, 4, 5]);
    assert_eq!(ids("meta is null"), NONE);
    assert_eq!(ids(r#"exists meta["b"] and age > 25"#), vec![2, 4]);
}

#[test]
fn expr_nullable_fields_follow_milvus_valid_bits() {
    assert_eq!(ids("opt > 0"), vec![1]);
    assert_eq!(ids("opt <= 0"), vec![4, 5]);
    // `not` keeps a comparison on a null value false ...
    assert_eq!(ids("not (opt > 0)"), vec![4, 5]);
    assert_eq!(ids("opt not in [7]"), vec![4, 5]);
    assert_eq!(ids("opt != 7"), vec![4, 5]);
    assert_eq!(ids("opt > 0 or age > 35"), vec![1, 3, 4, 5]);
    // ... but an `and`/`or` with a valid side is valid (Milvus ORs the valid bits).
    assert_eq!(ids("not (opt > 0 and age > 10)"), vec![2, 3, 4, 5]);
    assert_eq!(ids("not (opt > 0 or age > 100)"), vec![2, 3, 4, 5]);
    assert_eq!(ids("not (opt > 0 or opt < 0)"), vec![5]);
}

#[test]
fn expr_precedence_and_logic() {
    assert_eq!(ids("flag or age > 45 and age < 55"), vec![1, 3, 4, 5]);
    assert_eq!(ids("(flag or age > 45) and age < 55"), vec![1, 3, 4]);
    assert_eq!(ids("not flag and age > 25"), vec![2, 4]);
    assert_eq!(ids("not (flag and age > 25)"), vec![1, 2, 4]);
    assert_eq!(ids("!flag && age > 25 || id == 1"), vec![1, 2, 4]);
    assert_eq!(ids("NOT flag AND age > 25 OR id == 1"), vec![1, 2, 4]);
    assert_eq!(ids("age > 25 and age < 55 and flag"), vec![3]);
    assert_eq!(
        ids("age < 25 or age > 55 or title == 'apricot'"),
        vec![1, 4, 5]
    );
    assert_eq!(ids("not not flag"), vec![1, 3, 5]);
    assert_eq!(ids("true and age == 20"), vec![1]);
    assert_eq!(ids("false or age == 20"), vec![1]);
}

#[test]
fn expr_json_contains_family() {
    assert_eq!(ids(r#"json_contains(meta["arr"], 2)"#), vec![1]);
    assert_eq!(ids(r#"json_contains(meta["arr"], "p")"#), vec![2]);
    assert_eq!(ids(r#"json_contains(meta["arr"], [1, 2])"#), vec![3]);
    assert_eq!(ids(r#"json_contains_all(meta["arr"], [1, 3])"#), vec![1]);
    assert_eq!(ids(r#"json_contains_all(meta["arr"], [1, 4])"#), NONE);
    assert_eq!(
        ids(r#"json_contains_any(meta["arr"], [3, "q"])"#),
        vec![1, 2, 3]
    );
    assert_eq!(ids(r#"array_contains(meta["arr"], 1)"#), vec![1]);
    assert_eq!(ids(r#"JSON_CONTAINS(meta["arr"], 1.0)"#), vec![1]);
    assert_eq!(ids("json_contains(meta, 1)"), vec![5]);
    assert_eq!(ids(r#"array_length(meta["arr"]) == 2"#), vec![2, 3]);
    assert_eq!(ids(r#"array_length(meta["arr"]) == 0"#), vec![4]);
    assert_eq!(
        ids(r#"not json_contains(meta["arr"], 2)"#),
        vec![2, 3, 4, 5]
    );
}

#[test]
fn expr_literal_forms() {
    assert_eq!(ids("age == 0x14"), vec![1]);
    assert_eq!(
        ids("age == 024"),
        vec![1],
        "a leading 0 is octal, as in the grammar"
    );
    assert_eq!(ids("age == 0b10100"), vec![1]);
    assert_eq!(ids("price == 1e1"), vec![1]);
    assert_eq!(ids("price < .5"), vec![3]);
    assert_eq!(ids("price == 20.5E0"), vec![2]);
    assert_eq!(ids(r"title == 'apple\x20pie'"), vec![1]);
    assert_eq!(ids(r#"title == "\u0061pricot""#), vec![4]);
    assert_eq!(ids(r#"title == '50% off (a.b*c)'"#), vec![3]);
    assert_eq!(ids("age == -(-20)"), vec![1]);
}

#[test]
fn expr_primary_key_detection() {
    let s = schema(true);
    let pks = |e: &str| expr::compile_str(e, &s).unwrap().primary_keys();
    let ints = |v: &[i64]| Some(v.iter().map(|i| PrimaryKey::Int(*i)).collect::<Vec<_>>());
    assert_eq!(pks("id in [3, 1, 3]"), ints(&[3, 1]));
    assert_eq!(pks("id == 2"), ints(&[2]));
    assert_eq!(pks("2 == id"), ints(&[2]));
    assert_eq!(pks("id == 1 or id in [2, 3] or id == 1"), ints(&[1, 2, 3]));
    assert_eq!(pks("id in []"), ints(&[]));
    assert_eq!(pks("id in [1] and age > 1"), None);
    assert_eq!(pks("id > 1"), None);
    assert_eq!(pks("id not in [1]"), None);
    assert_eq!(pks("age in [1]"), None);
    assert_eq!(pks("id == 1 or age == 2"), None);
    assert_eq!(pks(""), None);

    let vs = CollectionSchema {
        name: "c".into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("pk", DataType::VarChar)
                .primary(false)
                .with_max_length(64),
            FieldSchema::new("v", DataType::FloatVector).with_dim(2),
        ],
        enable_dynamic_field: false,
    }
    .validate_and_normalize()
    .unwrap();
    let plan = expr::compile_str(r#"pk in ["a", "b"] or pk == 'c'"#, &vs).unwrap();
    assert_eq!(
        plan.primary_keys(),
        Some(vec![
            PrimaryKey::Str("a".into()),
            PrimaryKey::Str("b".into()),
            PrimaryKey::Str("c".into())
        ])
    );
}

#[test]
fn expr_fields_and_match_all() {
    let s = schema(true);
    let meta = s.fields.iter().position(|f| f.is_dynamic).unwrap();
    let plan = expr::compile_str(r#"age > 1 and color == "x" or title like "a%""#, &s).unwrap();
    assert_eq!(plan.fields(), vec![1, 5, meta]);
    assert!(expr::compile_str("", &s).unwrap().is_match_all());
    assert!(expr::compile_str("  \n\t ", &s).unwrap().is_match_all());
    assert!(
        expr::compile_str_with_params(" ", &s, &HashMap::new())
            .unwrap()
            .is_match_all()
    );
    assert!(expr::compile_str("true", &s).unwrap().is_match_all());
    assert!(expr::compile_str("1 < 2", &s).unwrap().is_match_all());
    assert!(
        expr::compile_str("age > 1 or true", &s)
            .unwrap()
            .is_match_all()
    );
    assert!(!expr::compile_str("age > 1", &s).unwrap().is_match_all());
    assert_eq!(ids("false"), NONE);
    assert_eq!(ids("age > 1 and false"), NONE);
    assert_eq!(
        expr::compile_str("", &s).unwrap().fields(),
        Vec::<usize>::new()
    );
}

#[test]
fn expr_templates() {
    let s = schema(true);
    let rows = dataset(&s);
    let run = |e: &str, params: serde_json::Value| {
        let params: HashMap<String, serde_json::Value> = serde_json::from_value(params).unwrap();
        expr::compile_str_with_params(e, &s, &params).map(|p| ids_of(&p, &rows))
    };
    assert_eq!(
        run(
            "age > {min} and title in {names}",
            json!({"min": 30, "names": ["apricot", "banana split"]})
        )
        .unwrap(),
        vec![4]
    );
    assert_eq!(
        run(
            "age >= {min} and title in {names}",
            json!({"min": 30, "names": ["apricot", "banana split"]})
        )
        .unwrap(),
        vec![2, 4]
    );
    assert_eq!(
        run("title == {t}", json!({"t": "50% off (a.b*c)"})).unwrap(),
        vec![3]
    );
    assert_eq!(
        run("flag == {b} and price < {p}", json!({"b": true, "p": 7.5})).unwrap(),
        vec![3, 5]
    );
    assert_eq!(
        run("{lo} < age < {hi}", json!({"lo": 20, "hi": 50})).unwrap(),
        vec![2, 3]
    );
    assert_eq!(
        run(
            r#"json_contains_any(meta["arr"], {xs})"#,
            json!({"xs": [[1, 2], "p"]})
        )
        .unwrap(),
        vec![2, 3]
    );
    assert_eq!(
        run("age > {min}", json!({"min": 30, "unused": 1})).unwrap(),
        vec![3, 4, 5]
    );

    let params: HashMap<String, serde_json::Value> =
        serde_json::from_value(json!({"ids": [5, 2]})).unwrap();
    let plan = expr::compile_str_with_params("id in {ids}", &s, &params).unwrap();
    assert_eq!(
        plan.primary_keys(),
        Some(vec![PrimaryKey::Int(5), PrimaryKey::Int(2)])
    );

    match run("age > {min}", json!({})).unwrap_err() {
        ExprError::Template { pos, name, .. } => assert_eq!((pos, name.as_str()), (6, "min")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run("age > {min}", json!({"min": {"a": 1}})),
        Err(ExprError::Template { .. })
    ));
    assert!(matches!(
        run("age > {min}", json!({"min": null})),
        Err(ExprError::Template { .. })
    ));
    assert!(matches!(
        run("age > {min}", json!({"min": "x"})),
        Err(ExprError::Type { pos: 6, .. })
    ));
    // Without parameters a template is an error too.
    assert!(matches!(
        expr::compile_str("id in {ids}", &s),
        Err(ExprError::Template { pos: 6, .. })
    ));
}

#[test]
fn expr_canonical_display_round_trips() {
    for e in [
        "a or b and c",
        "not a and b",
        "not (a and b)",
        "(a or b) and (c or d)",
        "a < b == c",
        "(1 < x) < 5",
        "1 < x <= 5",
        "10 >= m[\"a\"][0] > 2",
        "-x ** 2",
        "(-2) ** 2",
        "x - -5",
        "-(5) + 1",
        "exists (x like \"a\")",
        "exists x like \"a\"",
        "x not in [1, -2, \"s\", [true]]",
        "json_contains($meta[\"k\"], {v})",
        "x is not null or y is null",
        "\"quote\\\" backslash\\\\ newline\\n\" == s",
        "a % 3 == 1 and b / 2 > c * d - e",
    ] {
        let ast = expr::parse(e).unwrap();
        let printed = ast.to_string();
        assert_eq!(printed, e, "canonical form");
        assert_eq!(expr::parse(&printed).unwrap(), ast);
    }
    assert_eq!(
        expr::parse("A && B || !C").unwrap().to_string(),
        "A and B or not C"
    );
    assert_eq!(
        expr::parse("x IN [1,2,]").unwrap().to_string(),
        "x in [1, 2]"
    );
}

#[test]
fn expr_syntax_errors() {
    assert_syntax("age >", 5, "<EOF>");
    assert_syntax("age > 1 and", 11, "<EOF>");
    assert_syntax("(age > 1", 8, "<EOF>");
    assert_syntax("((age > 1)", 10, "<EOF>");
    assert_syntax("age > 1)", 7, ")");
    assert_syntax("age > ()", 7, ")");
    assert_syntax(r#"title == "abc"#, 9, "\"abc");
    assert_syntax("title == 'ab", 9, "'ab");
    assert_syntax("title == \"ab\nc\"", 9, "\"ab");
    assert_syntax("age = 5", 4, "=");
    assert_syntax("age > 1 & flag", 8, "&");
    assert_syntax("age >> 1", 4, ">>");
    assert_syntax("age > 99999999999999999999", 6, "99999999999999999999");
    assert_syntax("age > 9223372036854775808", 6, "9223372036854775808");
    assert_syntax("meta[abc] > 1", 5, "a");
    assert_syntax("age # 1", 4, "#");
    assert_syntax("age in [1, 2", 12, "<EOF>");
    assert_syntax("age in [1 2]", 10, "2");
    assert_syntax("age > 1 age", 8, "age");
    assert_syntax(r#"title == "\q""#, 10, "\\q");
    assert_syntax("is null", 0, "is null");
    assert!(matches!(
        expr::parse(""),
        Err(ExprError::Syntax { pos: 0, .. })
    ));
    let e = err("age >");
    assert_eq!(e.pos(), 5);
    let shown = ferrovus_core::CoreError::from(e).to_string();
    assert!(
        shown.contains("position 5") && shown.contains("<EOF>"),
        "{shown}"
    );
}

#[test]
fn expr_type_errors() {
    assert_type(r#"age == "x""#, 7, "\"x\"", "VarChar");
    assert_type(r#""x" == age"#, 0, "\"x\"", "Int64 field age");
    assert_type("title == 1", 9, "1", "VarChar field title");
    assert_type("title > age", 8, "age", "not supported");
    assert_type("flag == 1", 8, "1", "Bool");
    assert_type("title like 1", 11, "1", "string literal");
    assert_type(r#"age like "a%""#, 0, "age", "VarChar or JSON");
    assert_type("title + 1 > 2", 0, "title", "arithmetic");
    assert_type("v > 1", 0, "v", "vector field v");
    assert_type("age in 5", 7, "5", "must be a list");
    assert_type(r#"age in [1, "a"]"#, 11, "\"a\"", "not supported");
    assert_type("age % 1.5 == 0", 6, "1.5", "modulo");
    assert_type("age / 0 > 1", 6, "0", "division");
    assert_type("5 < age < 1", 0, "5 < age < 1", "invalid range");
    assert_type("1 < age < age", 10, "age", "constant");
    assert_type("not age > 5", 0, "not age", "not (a > b)");
    assert_type("exists age", 7, "age", "JSON key path");
    assert_type("json_contains(age, 1)", 14, "age", "JSON");
    assert_type(r#"json_contains_all(meta["a"], 1)"#, 29, "1", "list");
    assert_type(
        r#"text_match(title, "x")"#,
        0,
        r#"text_match(title, "x")"#,
        "not supported",
    );
    assert_type(r#"meta["a"] > [1]"#, 12, "[1]", "==");
    assert_type("age", 0, "age", "not a boolean");
    assert_type("1", 0, "1", "not a boolean");
    assert_type("age + 1", 0, "age + 1", "not a boolean");
    assert_type(r#"age["a"] > 1"#, 0, r#"age["a"]"#, "[]");
    assert_type("1 < flag < 2", 4, "flag", "Bool");
    // As in Milvus, a predicate is not a value: `(age in [1]) == true` is rejected.
    assert_type(
        "age in [20, 30] == true",
        0,
        "age in [20, 30]",
        "cannot be used as a value",
    );

    match err("unknown_f > 1") {
        ExprError::UnknownField { pos, name } => assert_eq!((pos, name.as_str()), (0, "unknown_f")),
        other => panic!("{other:?}"),
    }
    match err(r#"age > 1 and other["a"] == 1"#) {
        ExprError::UnknownField { pos, name } => assert_eq!((pos, name.as_str()), (12, "other")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        err(r#"$meta["k"] == 1"#),
        ExprError::UnknownField { pos: 0, .. }
    ));
    // With the dynamic field the same names are dynamic keys.
    assert!(expr::compile_str("unknown_f > 1", &schema(true)).is_ok());
    assert!(expr::compile_str(r#"$meta["k"] == 1"#, &schema(true)).is_ok());
}

#[test]
fn expr_plans_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Plan>();
    assert_send_sync::<ExprError>();
}
