//! Faults no local server produces, injected by the test proxy: throttling, unprocessed items,
//! server errors and dropped connections. The sync must still leave the target equal to the source.

use std::collections::HashSet;

use ddbsync::pure::hash::{content_hash, from_hex, Excluded};

use crate::harness::{text, Ctx};
use crate::proxy::{Fault, Faults};

#[tokio::test]
async fn with_30_percent_of_calls_faulted_the_target_still_equals_the_source() {
    let scale = 300;
    let ctx = Ctx::new(scale).await;
    ctx.write_profile("local", "max_in_flight = 4\n");
    ctx.proxy.set_faults(Some(Faults { fraction: 0.3, seed: 20261121 }));
    let first = ctx.sync(&[]);
    // A change, then a second faulted run: updates and the diff's Scan go through faults too.
    ctx.sql(&["UPDATE questions SET prompt = prompt || ' (revised)' WHERE id % 5 = 0"]);
    let second = ctx.sync(&[]);
    ctx.proxy.set_faults(None);

    let injected = ctx.proxy.injected();
    let kinds: HashSet<Fault> = injected.iter().copied().collect();
    assert_eq!(kinds.len(), 6, "every kind of fault was injected: {kinds:?}");
    let retries = first["total"]["retries"].as_u64().unwrap() + second["total"]["retries"].as_u64().unwrap();
    assert!(
        retries as usize >= injected.len() / 2,
        "retries counted in the report: {retries} for {} faults",
        injected.len()
    );
    assert!(first["total"]["throttled"].as_u64().unwrap() > 0);
    assert_eq!(first["total"]["failed"], 0);
    assert_eq!(second["total"]["failed"], 0);

    // Read every item back: one per source row, none missing, none extra, each hash matching its content.
    let lessons = ctx.scan("lessons").await;
    let ids: HashSet<String> = lessons.iter().map(|i| text(&i["lesson_id"])).collect();
    let source_ids: HashSet<String> = ctx.query("SELECT id FROM lessons").into_iter().collect();
    assert_eq!(ids, source_ids);
    assert_eq!(lessons.len(), scale as usize);
    assert_eq!(ctx.scan("passages").await.len(), 2 * scale as usize);
    for item in &lessons {
        let stored = from_hex(&text(&item["_ddbsync_hash"])).unwrap();
        assert_eq!(content_hash(item, &Excluded::default()), stored, "lesson {}", text(&item["lesson_id"]));
    }
    let revised = lessons
        .iter()
        .flat_map(|l| l["questions"].as_l().unwrap())
        .filter(|q| text(&q.as_m().unwrap()["prompt"]).ends_with(" (revised)"))
        .count();
    assert_eq!(revised.to_string(), ctx.query("SELECT count(*) FROM questions WHERE id % 5 = 0")[0]);

    // And the stored hashes are the source's: a fault-free run finds nothing to write.
    let check = ctx.sync(&[]);
    assert_eq!((check["total"]["created"].as_u64(), check["total"]["updated"].as_u64()), (Some(0), Some(0)));
}
