//! Attachments end to end: upload through `chat-api`, processing by a real `chat-worker`
//! process, thumbnails, sending, downloads for participants only; refused types and
//! oversized files leave nothing behind.

use std::io::Cursor;
use std::time::Duration;

use chat_tests::fleet::Worker;
use chat_tests::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// Polls an attachment until it leaves `pending`.
async fn processed(app: &TestApp, user: &TestUser, id: &str) -> Value {
    for _ in 0..200 {
        let a = app.get(&format!("/api/chat/attachments/{id}"), user).await;
        let body = a.ok(200).clone();
        if body["state"] != "pending" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("attachment {id} was not processed in time");
}

#[tokio::test]
async fn an_image_is_processed_sent_and_downloaded_by_participants_only() {
    let app = TestApp::spawn().await.expect("app");
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let cid = app.direct(&alice, &bob).await;
    let image = png(640, 480);

    // Declared as something else: the type is sniffed from the bytes.
    let resp = app
        .upload(
            &alice,
            cid,
            "../../holiday.png",
            "application/x-lies",
            image.clone(),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let created: Value = resp.json().await.expect("json");
    assert_eq!(created["state"], "pending");
    assert_eq!(
        created["file_name"], "holiday.png",
        "path parts are dropped"
    );
    let id = created["id"].as_str().expect("id").to_owned();

    let ready = processed(&app, &alice, &id).await;
    assert_eq!(ready["state"], "ready");
    assert_eq!(ready["content_type"], "image/png");
    assert_eq!(ready["declared_type"], "application/x-lies");
    assert_eq!(
        (ready["width"].clone(), ready["height"].clone()),
        (json!(640), json!(480))
    );
    assert_eq!(ready["size"], image.len());
    let expected_hash: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&image)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(ready["sha256"], expected_hash);

    // The thumbnail exists and is a small PNG.
    let thumb = app
        .http
        .get(format!(
            "{}{}",
            app.base,
            ready["thumbnail_url"].as_str().expect("thumbnail url")
        ))
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("thumbnail");
    assert_eq!(thumb.status().as_u16(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/png");
    let t = image::load_from_memory(&thumb.bytes().await.expect("bytes")).expect("png thumbnail");
    assert_eq!((t.width(), t.height()), (256, 192));

    // Sent with a message: an image message carrying it.
    let sent = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"attachments": [id], "text": ""}),
        )
        .await;
    let message = sent.ok(201).clone();
    assert_eq!(message["kind"], "image");
    assert_eq!(message["attachments"][0]["id"], id);
    let page = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &bob)
        .await;
    assert_eq!(page.ok(200)[0]["attachments"][0]["id"], id);
    // It cannot be sent twice.
    let again = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"attachments": [id], "text": "again"}),
        )
        .await;
    assert_eq!(again.problem(422), "validation_failed");

    // Participants download the exact bytes; others get nothing.
    let download = format!("{}/api/chat/attachments/{id}/download", app.base);
    let got = app
        .http
        .get(&download)
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("download");
    assert_eq!(got.status().as_u16(), 200);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .expect("header")
            .contains("holiday.png")
    );
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), image);
    for path in [
        format!("/api/chat/attachments/{id}"),
        format!("/api/chat/attachments/{id}/download"),
        format!("/api/chat/attachments/{id}/thumbnail"),
    ] {
        assert_eq!(
            app.get(&path, &eve).await.problem(404),
            "not_found",
            "{path}"
        );
    }
    let outsider_upload = app.upload(&eve, cid, "x.png", "image/png", png(8, 8)).await;
    assert_eq!(outsider_upload.status().as_u16(), 404);
}

#[tokio::test]
async fn disallowed_and_oversized_files_are_refused_and_leave_nothing() {
    let app = TestApp::spawn().await.expect("app");
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let mut tail = app.bus_tail().await.expect("bus");

    // A Windows executable claiming to be a PDF.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    exe.extend(std::iter::repeat_n(0u8, 4096));
    let resp = app
        .upload(&alice, cid, "invoice.pdf", "application/pdf", exe)
        .await;
    assert_eq!(resp.status().as_u16(), 201);
    let id = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let rejected = processed(&app, &alice, &id).await;
    assert_eq!(rejected["state"], "rejected");
    assert!(
        rejected["error"]
            .as_str()
            .expect("reason")
            .contains("not allowed")
    );
    let attachment_id: chat_domain::AttachmentId = id.parse().expect("id");
    let row = app
        .service
        .store()
        .attachment(attachment_id)
        .await
        .expect("row")
        .expect("exists");
    assert!(
        !app.service
            .object_exists(&row.object_key)
            .await
            .expect("head"),
        "the bytes are gone"
    );
    let events = tail
        .until(Duration::from_secs(10), |d| {
            chat_tests::types(d).contains(&"attachment.rejected")
        })
        .await
        .expect("event");
    assert!(chat_tests::types(&events).contains(&"attachment.rejected"));
    let download = app
        .get(&format!("/api/chat/attachments/{id}/download"), &alice)
        .await;
    assert_eq!(download.problem(409), "attachment_not_ready");
    let send = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            &alice,
            json!({"attachments": [id]}),
        )
        .await;
    assert_eq!(send.problem(422), "validation_failed");

    // Over the limit (2 MiB in tests): 413 before anything is stored.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM attachments")
        .fetch_one(app.service.store().pool())
        .await
        .expect("count");
    let big = vec![b'a'; 3 * 1024 * 1024];
    let resp = app.upload(&alice, cid, "big.txt", "text/plain", big).await;
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM attachments")
        .fetch_one(app.service.store().pool())
        .await
        .expect("count");
    assert_eq!(before, after);
    let stored = walk(&app.settings.storage.storage_dir.join("attachments"));
    assert_eq!(stored, 0, "no object was kept for the refused files");

    // Without a file part, or with an empty file: clear errors.
    let empty = app
        .upload(&alice, cid, "empty.txt", "text/plain", Vec::new())
        .await;
    assert_eq!(empty.status().as_u16(), 422);
    let no_file = app
        .http
        .post(format!(
            "{}/api/chat/conversations/{cid}/attachments/",
            app.base
        ))
        .bearer_auth(&alice.token)
        .multipart(reqwest::multipart::Form::new().text("other", "x"))
        .send()
        .await
        .expect("send");
    assert_eq!(no_file.status().as_u16(), 400);
}

/// Files under a directory, recursively.
fn walk(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn uploads_whose_job_was_lost_are_queued_again_by_the_sweep() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    // Uploaded while no worker runs; then the queue loses the job (as when Redis
    // restarts empty).
    let resp = app
        .upload(
            &alice,
            cid,
            "note.txt",
            "text/plain",
            b"hello there\n".to_vec(),
        )
        .await;
    let id = resp.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The queue lives under the app's key prefix: drop every job key there.
    let keys: Vec<String> = {
        use std::process::Command;
        let out = Command::new("redis-cli")
            .args([
                "-u",
                &app.settings.redis_url,
                "--scan",
                "--pattern",
                &format!("{}jobs:*", app.settings.redis_prefix),
            ])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert!(!keys.is_empty(), "the upload queued a job");
    let deleted = std::process::Command::new("redis-cli")
        .args(["-u", &app.settings.redis_url, "del"])
        .args(&keys)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("redis-cli del");
    assert!(deleted.success());
    sqlx::query(
        "UPDATE attachments SET created_at = now() - interval '5 minutes' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(app.service.store().pool())
    .await
    .expect("age it");
    assert_eq!(
        app.service.requeue_stale_jobs(10).await.expect("sweep"),
        0,
        "not stale yet at 10 minutes"
    );
    // A worker starting now has no job for it in the queue: its sweep (at start, then
    // every minute) queues it again.
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let ready = processed(&app, &alice, &id).await;
    assert_eq!(ready["state"], "ready");
}

#[tokio::test]
async fn a_file_name_that_hides_its_real_extension_is_refused() {
    let app = TestApp::spawn().await.expect("app");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    // Shown as "photopiz.png": the right-to-left override reverses "gnp.zip".
    let spoofed = app
        .upload(&alice, cid, "photo\u{202E}gnp.zip", "image/png", png(8, 8))
        .await;
    assert_eq!(spoofed.status(), 422);
    let problem: Value = spoofed.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["field"], "file_name");
    let honest = app
        .upload(&alice, cid, "photo.png", "image/png", png(8, 8))
        .await;
    assert_eq!(honest.status(), 201);
}

/// Uploads a PNG as `user` and sends it in a message; returns (attachment id, message id).
async fn sent_image(app: &TestApp, user: &TestUser, cid: Uuid) -> (String, String) {
    let created: Value = app
        .upload(user, cid, "pic.png", "image/png", png(32, 32))
        .await
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(processed(app, user, &id).await["state"], "ready");
    let message = app
        .post(
            &format!("/api/chat/conversations/{cid}/messages/"),
            user,
            json!({"attachments": [id], "text": "look"}),
        )
        .await;
    let message_id = message.ok(201)["id"].as_str().expect("id").to_owned();
    (id, message_id)
}

async fn download_status(app: &TestApp, user: &TestUser, id: &str) -> (u16, u16) {
    let meta = app.get(&format!("/api/chat/attachments/{id}"), user).await;
    let bytes = app
        .get(&format!("/api/chat/attachments/{id}/download"), user)
        .await;
    (meta.status.as_u16(), bytes.status.as_u16())
}

#[tokio::test]
async fn files_go_with_their_deleted_message_and_hide_with_a_hidden_one() {
    let app = TestApp::spawn().await.expect("app");
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let other = app.user("other").await;
    let cid = app.group(&owner, &[&member, &other]).await;

    // Deleted: nobody reaches the file any more, and its bytes are gone from storage.
    let (file, message) = sent_image(&app, &member, cid).await;
    assert_eq!(download_status(&app, &other, &file).await, (200, 200));
    let objects_before = count_files(&app.settings.storage.storage_dir);
    app.delete(
        &format!("/api/chat/conversations/{cid}/messages/{message}/"),
        &member,
    )
    .await
    .ok(200);
    for user in [&member, &other, &owner] {
        assert_eq!(download_status(&app, user, &file).await, (404, 404));
    }
    let history = app
        .get(&format!("/api/chat/conversations/{cid}/messages/"), &other)
        .await;
    let deleted = history
        .ok(200)
        .as_array()
        .expect("page")
        .iter()
        .find(|m| m["id"] == message)
        .expect("the deleted message keeps its place")
        .clone();
    assert_eq!(deleted["attachments"], json!([]), "and lists no file");
    assert!(
        count_files(&app.settings.storage.storage_dir) < objects_before,
        "the file and its thumbnail are deleted from storage"
    );

    // Hidden by a moderator: its files are the moderators' too.
    let (file, message) = sent_image(&app, &member, cid).await;
    app.post(
        &format!("/api/chat/conversations/{cid}/messages/{message}/moderation/"),
        &owner,
        json!({"decision": "hide", "reason": "spam"}),
    )
    .await
    .ok(200);
    assert_eq!(download_status(&app, &other, &file).await, (404, 404));
    assert_eq!(download_status(&app, &owner, &file).await, (200, 200));
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// A PNG that is small on disk and huge decoded: `w`×`h` 16-bit RGBA of zeros.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    use image::ImageEncoder;
    let raw = vec![0u8; w as usize * h as usize * 8];
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&raw, w, h, image::ExtendedColorType::Rgba16)
    .expect("png");
    out
}

#[tokio::test]
async fn images_that_decode_to_hundreds_of_megabytes_cost_the_worker_little() {
    let app = TestApp::spawn().await.expect("app");
    let mut worker = Worker::spawn(&app.settings).await.expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    // 4500×4500 of 16-bit RGBA: 162 MB decoded, a few hundred KB as a file.
    let bomb = png_bomb(4500, 4500);
    assert!(bomb.len() < 2 * 1024 * 1024, "{} bytes", bomb.len());
    let mut ids = Vec::new();
    for i in 0..3 {
        let created: Value = app
            .upload(&alice, cid, &format!("b{i}.png"), "image/png", bomb.clone())
            .await
            .json()
            .await
            .expect("json");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        let done = processed(&app, &alice, id).await;
        assert_eq!(done["state"], "ready", "{done}");
        assert_eq!(done["width"], 4500);
        assert!(done["thumbnail_url"].is_null(), "no thumbnail: {done}");
    }
    let peak = worker.peak_rss_kib().expect("peak rss");
    assert!(
        peak < 150 * 1024,
        "the worker peaked at {} MiB",
        peak / 1024
    );
    worker.kill().await;
}

#[tokio::test]
async fn unsent_uploads_and_old_exports_expire() {
    let app = TestApp::spawn().await.expect("app");
    let _worker = Worker::spawn_with(
        &app.settings,
        &[
            ("CHAT_SWEEP_SECS", "1"),
            ("CHAT_UNSENT_UPLOAD_TTL_SECS", "3"),
            ("CHAT_EXPORT_TTL_SECS", "3"),
        ],
    )
    .await
    .expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let cid = app.direct(&alice, &bob).await;
    let (sent, _) = sent_image(&app, &alice, cid).await;
    let unsent: Value = app
        .upload(&alice, cid, "later.png", "image/png", png(16, 16))
        .await
        .json()
        .await
        .expect("json");
    let unsent = unsent["id"].as_str().expect("id").to_owned();
    assert_eq!(processed(&app, &alice, &unsent).await["state"], "ready");
    let export = app
        .post(
            &format!("/api/chat/conversations/{cid}/exports/"),
            &alice,
            json!({"format": "json"}),
        )
        .await;
    let export_path = format!(
        "/api/chat/conversations/{cid}/exports/{}",
        export.ok(202)["id"].as_str().expect("id")
    );

    // Within a few sweeps, the unsent upload and the finished export are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let upload_gone = app
            .get(&format!("/api/chat/attachments/{unsent}"), &alice)
            .await
            .status
            == 404;
        let export_gone = app.get(&export_path, &alice).await.status == 404;
        if upload_gone && export_gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "upload gone: {upload_gone}, export gone: {export_gone}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // What was sent stays.
    assert_eq!(download_status(&app, &bob, &sent).await, (200, 200));
}

/// At most 50 uploads not sent yet per person: the next is refused before its body is
/// read, and sending one makes room again.
#[tokio::test]
async fn uploads_not_sent_yet_are_limited_per_person() {
    let app = TestApp::spawn().await.expect("app");
    let _worker = Worker::spawn(&app.settings).await.expect("worker");
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let first = app.direct(&alice, &bob).await;
    let second = app.group(&alice, &[&bob]).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        // Spread over two conversations: the quota is the person's.
        let cid = if i % 2 == 0 { first } else { second };
        let resp = app
            .upload(&alice, cid, "notes.txt", "text/plain", b"notes".to_vec())
            .await;
        assert_eq!(resp.status(), 201, "upload {i}");
        let body: Value = resp.json().await.expect("json");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let refused = app
        .upload(&alice, second, "more.txt", "text/plain", b"more".to_vec())
        .await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.expect("problem");
    assert_eq!(problem["code"], "too_many_uploads");
    // Someone else is not affected.
    let theirs = app
        .upload(&bob, first, "bob.txt", "text/plain", b"bob".to_vec())
        .await;
    assert_eq!(theirs.status(), 201);
    // Sending one frees a place.
    assert_eq!(processed(&app, &alice, &ids[0]).await["state"], "ready");
    app.post(
        &format!("/api/chat/conversations/{first}/messages/"),
        &alice,
        json!({"attachments": [ids[0]], "text": "here"}),
    )
    .await
    .ok(201);
    let again = app
        .upload(&alice, second, "more.txt", "text/plain", b"more".to_vec())
        .await;
    assert_eq!(again.status(), 201);
}
