//! DynamoDB JSON, the form `aws dynamodb` and DynamoDB's S3 export use: `{"id": {"N": "7"}}`. Pure.
//! Numbers stay strings, so nothing is rounded; binary values are base64. Backups use it.

use aws_sdk_dynamodb::primitives::Blob;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::pure::item::{AttributeValue, Item};

pub fn item_to_json(item: &Item) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

/// One value in DynamoDB JSON (`{"S": "abc"}`).
pub fn value_to_json(value: &AttributeValue) -> Value {
    let b64 = |b: &Blob| Value::String(STANDARD.encode(b.as_ref()));
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(set) => json!({ "SS": set }),
        AttributeValue::Ns(set) => json!({ "NS": set }),
        AttributeValue::Bs(set) => json!({ "BS": set.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(list) => json!({ "L": list.iter().map(value_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(map) => json!({ "M": item_to_json(map) }),
        other => json!({ "?": format!("{other:?}") }),
    }
}

pub fn item_from_json(value: &Value) -> Result<Item, String> {
    let map = value.as_object().ok_or("an item must be a JSON object")?;
    map.iter().map(|(k, v)| Ok((k.clone(), value_from_json(v).map_err(|e| format!("{k}: {e}"))?))).collect()
}

fn value_from_json(value: &Value) -> Result<AttributeValue, String> {
    let map: &Map<String, Value> = value.as_object().filter(|m| m.len() == 1).ok_or("expected {\"<type>\": value}")?;
    let (tag, inner) = map.iter().next().expect("one entry");
    let text = |v: &Value| v.as_str().map(str::to_string).ok_or_else(|| format!("{tag} needs a string"));
    let texts = |v: &Value| {
        v.as_array().ok_or_else(|| format!("{tag} needs a list"))?.iter().map(text).collect::<Result<Vec<_>, _>>()
    };
    let blob = |s: String| STANDARD.decode(s).map(Blob::new).map_err(|e| format!("bad base64: {e}"));
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(blob(text(inner)?)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("BOOL needs true or false")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts(inner)?),
        "NS" => AttributeValue::Ns(texts(inner)?),
        "BS" => AttributeValue::Bs(texts(inner)?.into_iter().map(blob).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            inner.as_array().ok_or("L needs a list")?.iter().map(value_from_json).collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(inner)?),
        other => return Err(format!("unknown type tag {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_goes_there_and_back() {
        let item: Item = [
            ("s", AttributeValue::S("é".into())),
            ("n", AttributeValue::N("12345678901234567890123456789012345678".into())),
            ("b", AttributeValue::B(Blob::new(vec![0, 255, 7]))),
            ("t", AttributeValue::Bool(true)),
            ("z", AttributeValue::Null(true)),
            ("ss", AttributeValue::Ss(vec!["a".into()])),
            ("ns", AttributeValue::Ns(vec!["1.5".into()])),
            ("bs", AttributeValue::Bs(vec![Blob::new(vec![1])])),
            ("l", AttributeValue::L(vec![AttributeValue::N("1".into())])),
            ("m", AttributeValue::M([("x".to_string(), AttributeValue::S("y".into()))].into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let json = item_to_json(&item);
        assert_eq!(json["b"], json!({"B": "AP8H"}));
        assert_eq!(json["n"], json!({"N": "12345678901234567890123456789012345678"}), "numbers stay exact strings");
        assert_eq!(item_from_json(&json).unwrap(), item);
    }

    #[test]
    fn malformed_values_are_named() {
        let err = item_from_json(&json!({"id": {"N": 7}})).unwrap_err();
        assert_eq!(err, "id: N needs a string");
        assert!(item_from_json(&json!({"id": {"X": "1"}})).unwrap_err().contains("unknown type tag X"));
    }
}
