//! Attachment processing.

use std::io::Cursor;

use bytes::Bytes;
use chat_domain::AttachmentId;
use chat_jobs::JobFailure;
use chat_service::ChatService;
use chat_store::attachments::Processed;
use sha2::{Digest, Sha256};

use crate::failure;

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 256;

/// Largest image (in pixels) we decode for a thumbnail; bigger ones are kept without.
/// 24 Mpx covers the photos people send (a 48 Mpx phone photo is kept, unthumbnailed).
const MAX_PIXELS: u64 = 24 * 1000 * 1000;
/// Most memory one decode may allocate, whatever the file claims (24 Mpx of 8-bit RGBA
/// is 96 MB; 16-bit channels would double it and are refused the thumbnail).
const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;
/// Decodes at once per worker process: with the allocation cap, the worst case a batch
/// of hostile images can cost is this many times [`MAX_DECODE_BYTES`].
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Types we accept, sniffed from the bytes.
const ALLOWED: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "audio/mp4",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "text/plain",
];

/// What the bytes are: the sniffed type, or `text/plain` for valid UTF-8 text without a
/// signature, or `None` when unrecognised.
pub fn sniff(bytes: &[u8]) -> Option<String> {
    match infer::get(bytes) {
        Some(kind) => Some(kind.mime_type().to_owned()),
        None if std::str::from_utf8(bytes).is_ok() && !bytes.contains(&0) => {
            Some("text/plain".to_owned())
        }
        None => None,
    }
}

/// Whether a sniffed type may be shared.
pub fn allowed(content_type: &str) -> bool {
    ALLOWED.contains(&content_type)
}

/// What decoding an image gave.
#[derive(Debug)]
pub enum Decoded {
    /// A PNG thumbnail, and the image's width and height.
    Thumbnail(Vec<u8>, u32, u32),
    /// Readable, but too large to decode safely: kept without a thumbnail.
    TooLarge(u32, u32),
    /// Not a readable image.
    Unreadable,
}

/// Reads an image's size and makes its thumbnail.
pub fn thumbnail(bytes: &[u8]) -> Decoded {
    let Ok(reader) = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format() else {
        return Decoded::Unreadable;
    };
    let Ok((w, h)) = reader.into_dimensions() else {
        return Decoded::Unreadable;
    };
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Decoded::TooLarge(w, h);
    }
    // The header may lie about what the data holds: the decoder itself is bounded too.
    let Ok(mut reader) = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format() else {
        return Decoded::Unreadable;
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = match reader.decode() {
        Ok(img) => img,
        Err(image::ImageError::Limits(_)) => return Decoded::TooLarge(w, h),
        Err(_) => return Decoded::Unreadable,
    };
    let thumb = img.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE);
    let mut out = Cursor::new(Vec::new());
    match thumb.write_to(&mut out, image::ImageFormat::Png) {
        Ok(()) => Decoded::Thumbnail(out.into_inner(), w, h),
        Err(_) => Decoded::Unreadable,
    }
}

/// Processes one attachment: ready (with hash, size and thumbnail) or rejected.
pub async fn process(service: &ChatService, id: AttachmentId) -> Result<(), JobFailure> {
    let Some((_attachment, bytes)) = service
        .pending_attachment_bytes(id)
        .await
        .map_err(failure)?
    else {
        // Already processed (a re-run after a crash): nothing to do.
        return Ok(());
    };
    let content_type = sniff(&bytes);
    let Some(content_type) = content_type.filter(|t| allowed(t)) else {
        let reason = match sniff(&bytes) {
            Some(t) => format!("files of type {t} are not allowed"),
            None => "unrecognised file type".to_owned(),
        };
        return service
            .attachment_refused(id, sniff(&bytes).as_deref(), &reason)
            .await
            .map_err(failure);
    };
    let sha256 = hex(&Sha256::digest(&bytes));
    let (mut width, mut height, mut thumbnail_key) = (None, None, None);
    if content_type.starts_with("image/") {
        let decoded = {
            let bytes = bytes.clone();
            let _turn = DECODES
                .acquire()
                .await
                .map_err(|e| JobFailure::Retry(e.to_string()))?;
            tokio::task::spawn_blocking(move || thumbnail(&bytes))
                .await
                .map_err(|e| JobFailure::Retry(e.to_string()))?
        };
        match decoded {
            Decoded::Thumbnail(png, w, h) => {
                width = Some(w as i32);
                height = Some(h as i32);
                thumbnail_key = Some(
                    service
                        .store_thumbnail(Bytes::from(png))
                        .await
                        .map_err(failure)?,
                );
            }
            Decoded::TooLarge(w, h) => {
                width = Some(w as i32);
                height = Some(h as i32);
            }
            Decoded::Unreadable => {
                return service
                    .attachment_refused(id, Some(&content_type), "the image could not be decoded")
                    .await
                    .map_err(failure);
            }
        }
    }
    let processed = Processed {
        content_type,
        sha256,
        width,
        height,
        thumbnail_key,
    };
    service
        .attachment_processed(id, processed)
        .await
        .map_err(failure)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("png");
        out.into_inner()
    }

    #[test]
    fn types_are_sniffed_not_declared() {
        assert_eq!(sniff(&png(4, 4)).as_deref(), Some("image/png"));
        assert_eq!(sniff(b"just some text\n").as_deref(), Some("text/plain"));
        assert_eq!(
            sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00").as_deref(),
            Some("application/vnd.microsoft.portable-executable")
        );
        assert!(!allowed("application/vnd.microsoft.portable-executable"));
        assert!(!allowed("application/x-executable"));
        assert_eq!(sniff(&[0u8, 159, 146, 150, 0, 1]), None);
    }

    #[test]
    fn thumbnails_fit_in_the_box_and_keep_the_size() {
        let Decoded::Thumbnail(thumb, w, h) = thumbnail(&png(800, 400)) else {
            panic!("no thumbnail")
        };
        assert_eq!((w, h), (800, 400));
        let t = image::load_from_memory(&thumb).expect("png");
        assert_eq!((t.width(), t.height()), (256, 128));
        assert!(matches!(thumbnail(b"not an image"), Decoded::Unreadable));
    }
}
