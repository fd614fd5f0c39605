//! The table's stream as Lambda hands it to the worker: records with keys only, in a batch.

use serde_json::{Value, json};

/// A stream record as Lambda delivers it from a table whose stream carries keys only.
pub fn stream_record(event_name: &str, pk: &str, sk: &str, sequence: u64) -> Value {
    json!({
        "eventID": format!("event-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_764_584_000,
            "Keys": {"PK": {"S": pk}, "SK": {"S": sk}},
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 64,
            "StreamViewType": "KEYS_ONLY"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-01T00:00:00.000"
    })
}

/// A batch of `records`, as the worker's event.
pub fn batch(records: Vec<Value>) -> worker::Event {
    serde_json::from_value(json!({"Records": records})).expect("a stream batch")
}
