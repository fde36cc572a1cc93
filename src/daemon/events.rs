//! Reading the body of one SQS message: which objects were created.
//!
//! Three shapes reach the queue: an S3 event notification sent directly, the same wrapped in an
//! SNS envelope (unless the subscription uses raw delivery), and an EventBridge "Object Created"
//! event. Keys in S3 and EventBridge events are URL-encoded with `+` for a space.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

/// A created object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key, as S3's API expects it.
    pub key: String,
    /// Present when the bucket is versioned; veil then reads exactly this version.
    pub version_id: Option<String>,
    /// The ETag of the object the event announced (without quotes). With the version id, it
    /// names exactly the bytes the event was about, even after the key is overwritten.
    pub etag: Option<String>,
    pub size: Option<u64>,
}

impl ObjectRef {
    /// From an event's fields: the key as encoded in events, an empty version or ETag as none.
    fn from_event(
        bucket: String,
        encoded_key: &str,
        object: EventObject,
    ) -> Result<Self, EventError> {
        let present = |v: Option<String>| v.filter(|v| !v.is_empty());
        Ok(Self {
            bucket,
            key: decode_key(encoded_key)?,
            version_id: present(object.version_id),
            etag: present(object.etag).map(|t| t.trim_matches('"').to_string()),
            size: object.size,
        })
    }

    /// The revision the event names, as [`crate::daemon::source::Fetched::revision`] reads it:
    /// the ETag, else the version id.
    pub fn revision(&self) -> Option<&str> {
        self.etag.as_deref().or(self.version_id.as_deref())
    }
}

/// The fields of an event's object that veil uses, whichever shape the event has.
struct EventObject {
    version_id: Option<String>,
    etag: Option<String>,
    size: Option<u64>,
}

/// What a message asks of veil.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects to anonymise (one message may name several).
    Created(Vec<ObjectRef>),
    /// Nothing to do: a test event, a non-create event. The message is acknowledged.
    Ignore(String),
}

/// Why a body cannot be read. The message is left for the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unreadable notification: not JSON ({0})")]
    NotJson(String),
    #[error("unreadable notification: SNS envelope without a Message")]
    SnsWithoutMessage,
    #[error("unreadable notification: the SNS Message is not JSON ({0})")]
    SnsMessageNotJson(String),
    #[error(
        "unreadable notification: neither an S3 notification, an SNS envelope nor an EventBridge S3 event"
    )]
    UnknownShape,
    /// The body has the shape of `kind` (S3 event, EventBridge event) but not its fields.
    #[error("unreadable notification: malformed {kind}: {message}")]
    Malformed { kind: &'static str, message: String },
    #[error("unreadable notification: S3 event version {0} (veil reads version 2.x)")]
    UnsupportedVersion(String),
    #[error("unreadable notification: a key does not decode to UTF-8")]
    KeyNotUtf8,
    #[error("unreadable notification: empty object key")]
    EmptyKey,
}

/// Parses one message body.
pub fn parse(body: &str) -> Result<Notice, EventError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    parse_value(value, true)
}

fn parse_value(value: Value, unwrap_sns: bool) -> Result<Notice, EventError> {
    if value.get("Records").is_some() {
        return s3_records(value);
    }
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Ignore("s3:TestEvent".into()));
    }
    if unwrap_sns && value.get("Type").and_then(Value::as_str) == Some("Notification") {
        let inner = value
            .get("Message")
            .and_then(Value::as_str)
            .ok_or(EventError::SnsWithoutMessage)?;
        let inner: Value = serde_json::from_str(inner)
            .map_err(|e| EventError::SnsMessageNotJson(e.to_string()))?;
        return parse_value(inner, false);
    }
    if value.get("source").and_then(Value::as_str) == Some("aws.s3") {
        return eventbridge(value);
    }
    Err(EventError::UnknownShape)
}

#[derive(Deserialize)]
struct Records {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_version: String,
    event_name: String,
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    bucket: Named,
    object: RecordObject,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordObject {
    key: String,
    size: Option<u64>,
    version_id: Option<String>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
}

fn s3_records(value: Value) -> Result<Notice, EventError> {
    let records: Records = serde_json::from_value(value).map_err(|e| EventError::Malformed {
        kind: "S3 event",
        message: e.to_string(),
    })?;
    let mut created = Vec::new();
    let mut ignored = Vec::new();
    for r in records.records {
        if r.event_version.split('.').next() != Some("2") {
            return Err(EventError::UnsupportedVersion(r.event_version));
        }
        if !r.event_name.starts_with("ObjectCreated:") {
            ignored.push(r.event_name);
            continue;
        }
        let o = r.s3.object;
        created.push(ObjectRef::from_event(
            r.s3.bucket.name,
            &o.key,
            EventObject {
                version_id: o.version_id,
                etag: o.etag,
                size: o.size,
            },
        )?);
    }
    if created.is_empty() {
        Ok(Notice::Ignore(if ignored.is_empty() {
            "no records".into()
        } else {
            ignored.join(", ")
        }))
    } else {
        Ok(Notice::Created(created))
    }
}

#[derive(Deserialize)]
struct BridgeEvent {
    detail: BridgeDetail,
}

#[derive(Deserialize)]
struct BridgeDetail {
    bucket: Named,
    object: BridgeObject,
}

#[derive(Deserialize)]
struct BridgeObject {
    key: String,
    size: Option<u64>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    etag: Option<String>,
}

fn eventbridge(value: Value) -> Result<Notice, EventError> {
    let detail_type = value.get("detail-type").and_then(Value::as_str);
    if detail_type != Some("Object Created") {
        return Ok(Notice::Ignore(format!(
            "EventBridge {}",
            detail_type.unwrap_or("event without detail-type")
        )));
    }
    let e: BridgeEvent = serde_json::from_value(value).map_err(|e| EventError::Malformed {
        kind: "EventBridge event",
        message: e.to_string(),
    })?;
    let o = e.detail.object;
    Ok(Notice::Created(vec![ObjectRef::from_event(
        e.detail.bucket.name,
        &o.key,
        EventObject {
            version_id: o.version_id,
            etag: o.etag,
            size: o.size,
        },
    )?]))
}

/// Undoes S3's form encoding of keys: `+` is a space, `%XX` a byte of UTF-8.
fn decode_key(raw: &str) -> Result<String, EventError> {
    let spaced = raw.replace('+', " ");
    let key = percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| EventError::KeyNotUtf8)?;
    if key.is_empty() {
        return Err(EventError::EmptyKey);
    }
    Ok(key.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_event(event_name: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
            "eventTime": "2026-11-28T10:00:00.000Z", "eventName": event_name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "veil",
                "bucket": {"name": "raw-images", "arn": "arn:aws:s3:::raw-images"},
                "object": {"key": key, "size": 1024, "eTag": "0123", "versionId": "v1",
                    "sequencer": "0055AED6DCD90281E5"}}}]})
        .to_string()
    }

    fn created(notice: Notice) -> Vec<ObjectRef> {
        match notice {
            Notice::Created(objects) => objects,
            other => panic!("expected objects, got {other:?}"),
        }
    }

    #[test]
    fn a_direct_s3_event_gives_the_decoded_key_and_version() {
        let objects = created(
            parse(&s3_event(
                "ObjectCreated:Put",
                "cam+1/a%2Bb+%C3%A9t%C3%A9.jpg",
            ))
            .unwrap(),
        );
        assert_eq!(
            objects,
            [ObjectRef {
                bucket: "raw-images".into(),
                key: "cam 1/a+b été.jpg".into(),
                version_id: Some("v1".into()),
                etag: Some("0123".into()),
                size: Some(1024),
            }]
        );
    }

    #[test]
    fn slashes_encoded_as_percent_2f_are_decoded() {
        let objects = created(parse(&s3_event("ObjectCreated:Put", "a%2Fb%2Fc.jpg")).unwrap());
        assert_eq!(objects[0].key, "a/b/c.jpg");
    }

    #[test]
    fn several_records_in_one_message_are_all_returned() {
        let mut v: Value = serde_json::from_str(&s3_event("ObjectCreated:Put", "a.jpg")).unwrap();
        let mut second = v["Records"][0].clone();
        second["s3"]["object"]["key"] = "b.jpg".into();
        second["s3"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("versionId");
        v["Records"].as_array_mut().unwrap().push(second);
        let objects = created(parse(&v.to_string()).unwrap());
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].key, "b.jpg");
        assert_eq!(objects[1].version_id, None);
    }

    #[test]
    fn an_sns_envelope_is_unwrapped() {
        let body = serde_json::json!({
            "Type": "Notification", "MessageId": "5c8e", "TopicArn": "arn:aws:sns:eu-west-1:111111111111:raw",
            "Subject": "Amazon S3 Notification",
            "Message": s3_event("ObjectCreated:CompleteMultipartUpload", "big+photo.jpg"),
            "Timestamp": "2026-11-28T10:00:00.000Z", "SignatureVersion": "1"})
        .to_string();
        assert_eq!(created(parse(&body).unwrap())[0].key, "big photo.jpg");
    }

    #[test]
    fn an_eventbridge_object_created_event_is_read() {
        let body = serde_json::json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created", "source": "aws.s3", "account": "111111111111",
            "time": "2026-11-28T10:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:s3:::raw-images"],
            "detail": {"version": "0", "bucket": {"name": "raw-images"},
                "object": {"key": "street/frame%20001.jpg", "size": 5, "etag": "b1946ac9",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "00617F08299329D189"},
                "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}})
        .to_string();
        let objects = created(parse(&body).unwrap());
        assert_eq!(objects[0].key, "street/frame 001.jpg");
        assert_eq!(
            objects[0].version_id.as_deref(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
        );
        assert_eq!(objects[0].etag.as_deref(), Some("b1946ac9"));
    }

    #[test]
    fn test_events_and_other_event_types_are_ignored() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-28T10:00:00.000Z","Bucket":"raw-images","RequestId":"1","HostId":"2"}"#;
        assert!(matches!(parse(test), Ok(Notice::Ignore(r)) if r == "s3:TestEvent"));
        assert!(matches!(
            parse(&s3_event("ObjectRemoved:Delete", "a.jpg")),
            Ok(Notice::Ignore(r)) if r == "ObjectRemoved:Delete"
        ));
        let deleted =
            r#"{"version":"0","detail-type":"Object Deleted","source":"aws.s3","detail":{}}"#;
        assert!(matches!(parse(deleted), Ok(Notice::Ignore(_))));
        let sns_test = serde_json::json!({"Type": "Notification", "Message": test}).to_string();
        assert!(matches!(parse(&sns_test), Ok(Notice::Ignore(_))));
    }

    #[test]
    fn unreadable_bodies_are_errors_that_say_why() {
        use EventError as E;
        // The variant, and for a malformed body the shape it was read as.
        let what = |e: &E| match e {
            E::Malformed { kind, .. } => format!("Malformed {kind}"),
            other => format!("{other:?}").split('(').next().unwrap().to_string(),
        };
        for (body, expected) in [
            ("", "NotJson"),
            ("not json", "NotJson"),
            ("[]", "UnknownShape"),
            ("{}", "UnknownShape"),
            (r#"{"Records": "x"}"#, "Malformed S3 event"),
            (
                r#"{"Records": [{"eventVersion": "2.1"}]}"#,
                "Malformed S3 event",
            ),
            (
                r#"{"Type": "Notification", "Message": "not json"}"#,
                "SnsMessageNotJson",
            ),
            (
                r#"{"Type": "Notification", "Message": "{\"Type\": \"Notification\", \"Message\": \"{}\"}"}"#,
                "UnknownShape",
            ),
            (
                r#"{"source": "aws.s3", "detail-type": "Object Created", "detail": {}}"#,
                "Malformed EventBridge event",
            ),
        ] {
            let e = parse(body).expect_err(body);
            assert_eq!(what(&e), expected, "{body:?}: {e:?}");
        }
        assert_eq!(
            parse(r#"{"Type": "Notification"}"#),
            Err(E::SnsWithoutMessage)
        );
        assert_eq!(
            parse(&s3_event("ObjectCreated:Put", "%FF.jpg")),
            Err(E::KeyNotUtf8)
        );
        assert_eq!(parse(&s3_event("ObjectCreated:Put", "")), Err(E::EmptyKey));
        let v1 = s3_event("ObjectCreated:Put", "a.jpg").replace("\"2.1\"", "\"1.0\"");
        assert_eq!(parse(&v1), Err(E::UnsupportedVersion("1.0".into())));
    }
}
