//! Attachments: upload (multipart, streamed to object storage), metadata, downloads.

use chat_domain::{AttachmentId, ConversationId};
use chat_service::ChatService;
use chat_service::attachments::Download;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::{Auth, Tag};
use crate::error::ApiError;
use crate::models::Attachment;

pub struct AttachmentsApi;

/// `multipart/form-data` with one part, `file`.
#[derive(Debug, Multipart)]
pub struct UploadForm {
    /// The file. Its type is sniffed from its bytes after upload.
    file: Upload,
}

#[derive(ApiResponse)]
pub enum Uploaded {
    /// Stored; `state` is `pending` until a worker has checked it (an
    /// `attachment.ready` or `attachment.rejected` event follows).
    #[oai(status = 201)]
    Created(Json<Attachment>),
}

#[derive(ApiResponse)]
pub enum FileDownload {
    /// The bytes (local storage).
    #[oai(status = 200)]
    Bytes(
        Binary<Body>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// A short-lived signed URL (S3): follow it.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

/// Reads the upload in chunks, so that it never sits in memory whole.
fn chunks(
    upload: Upload,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin + Send {
    let reader = upload.into_async_read();
    Box::pin(futures::stream::unfold(reader, |mut reader| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    }))
}

#[OpenApi(tag = "Tag::Messages")]
impl AttachmentsApi {
    /// Upload a file to a conversation (participants). Then send it with a message's
    /// `attachments` once it is `ready`. Larger than the limit: 413, nothing kept. With 50
    /// uploads not sent yet (they expire after a day): 409 `too_many_uploads`.
    #[oai(
        path = "/api/chat/conversations/:id/attachments/",
        method = "post",
        operation_id = "upload_attachment"
    )]
    async fn upload(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        form: UploadForm,
    ) -> Result<Uploaded, ApiError> {
        let caller = auth.caller(&svc).await?;
        let file_name = form.file.file_name().unwrap_or("file").to_owned();
        let declared = form.file.content_type().map(str::to_owned);
        let attachment = svc
            .upload_attachment(
                &caller,
                ConversationId::from(id.0),
                &file_name,
                declared.as_deref(),
                chunks(form.file),
            )
            .await?;
        Ok(Uploaded::Created(Json(attachment.into())))
    }

    /// An attachment's metadata and state (participants of its conversation).
    #[oai(
        path = "/api/chat/attachments/:id",
        method = "get",
        operation_id = "get_attachment"
    )]
    async fn get(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<Json<Attachment>, ApiError> {
        let caller = auth.caller(&svc).await?;
        Ok(Json(
            svc.attachment(&caller, AttachmentId::from(id.0))
                .await?
                .into(),
        ))
    }

    /// Download a ready attachment (participants): the bytes, or a redirect to a
    /// short-lived signed URL.
    #[oai(
        path = "/api/chat/attachments/:id/download",
        method = "get",
        operation_id = "download_attachment"
    )]
    async fn download(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<FileDownload, ApiError> {
        serve(&svc, &auth, id.0, false).await
    }

    /// An image attachment's thumbnail (PNG, at most 256×256).
    #[oai(
        path = "/api/chat/attachments/:id/thumbnail",
        method = "get",
        operation_id = "attachment_thumbnail"
    )]
    async fn thumbnail(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
    ) -> Result<FileDownload, ApiError> {
        serve(&svc, &auth, id.0, true).await
    }
}

async fn serve(
    svc: &ChatService,
    auth: &Auth,
    id: Uuid,
    thumbnail: bool,
) -> Result<FileDownload, ApiError> {
    let caller = auth.caller(svc).await?;
    let (attachment, download) = svc
        .download_attachment(&caller, AttachmentId::from(id), thumbnail)
        .await?;
    let content_type = if thumbnail {
        "image/png".to_owned()
    } else {
        attachment
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into())
    };
    // Quotes and control characters cannot reach the header: file names are validated
    // at upload, and quotes are replaced here.
    let name = attachment.file_name.replace('"', "'");
    let disposition = if thumbnail {
        "inline".to_owned()
    } else {
        format!("attachment; filename=\"{name}\"")
    };
    Ok(file_response(download, content_type, disposition))
}

/// The bytes (streamed) or a redirect to a signed URL.
pub fn file_response(
    download: Download,
    content_type: String,
    disposition: String,
) -> FileDownload {
    match download {
        Download::Url(url) => FileDownload::Redirect(url),
        Download::Stream { size, body } => FileDownload::Bytes(
            Binary(Body::from_bytes_stream(body)),
            content_type,
            disposition,
            size,
        ),
    }
}
