//! History exports: request (202 + job), state and progress, download.

use chat_domain::ConversationId;
use chat_service::ChatService;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::attachments::{FileDownload, file_response};
use super::{Auth, Tag};
use crate::error::ApiError;
use crate::models::{Export, ExportRequest};

pub struct ExportsApi;

#[derive(ApiResponse)]
pub enum ExportAccepted {
    /// Queued; poll it at `Location` (the body's `url`), or wait for the
    /// `export.finished` event.
    #[oai(status = 202)]
    Accepted(
        Json<Export>,
        /// The export's URL, to poll.
        #[oai(header = "Location")]
        String,
    ),
}

impl From<Export> for ExportAccepted {
    fn from(export: Export) -> Self {
        let location = export.url.clone();
        Self::Accepted(Json(export), location)
    }
}

#[OpenApi(tag = "Tag::Conversations")]
impl ExportsApi {
    /// Export the conversation's visible messages (hidden and deleted ones are left out)
    /// as JSON or CSV with the fields `id`, `remetente`, `tipo`, `conteudo`, `timestamp`.
    #[oai(
        path = "/api/chat/conversations/:id/exports/",
        method = "post",
        operation_id = "request_export"
    )]
    async fn request(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<ExportRequest>,
    ) -> Result<ExportAccepted, ApiError> {
        let caller = auth.caller(&svc).await?;
        let body = body.0;
        let export = svc
            .request_export(
                &caller,
                ConversationId::from(id.0),
                body.format.into(),
                body.since,
                body.until,
            )
            .await?;
        Ok(Export::from(export).into())
    }

    /// An export's state and progress.
    #[oai(
        path = "/api/chat/conversations/:id/exports/:export_id",
        method = "get",
        operation_id = "get_export"
    )]
    async fn get(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        export_id: Path<Uuid>,
    ) -> Result<Json<Export>, ApiError> {
        let caller = auth.caller(&svc).await?;
        Ok(Json(
            svc.export(&caller, ConversationId::from(id.0), export_id.0)
                .await?
                .into(),
        ))
    }

    /// Download a finished export (participants).
    #[oai(
        path = "/api/chat/conversations/:id/exports/:export_id/download",
        method = "get",
        operation_id = "download_export"
    )]
    async fn download(
        &self,
        svc: Data<&ChatService>,
        auth: Auth,
        id: Path<Uuid>,
        export_id: Path<Uuid>,
    ) -> Result<FileDownload, ApiError> {
        let caller = auth.caller(&svc).await?;
        let (export, download) = svc
            .download_export(&caller, ConversationId::from(id.0), export_id.0)
            .await?;
        let (content_type, ext) = match export.format {
            chat_domain::ExportFormat::Json => ("application/json", "json"),
            chat_domain::ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        };
        Ok(file_response(
            download,
            content_type.to_owned(),
            format!("attachment; filename=\"export-{}.{ext}\"", export.id),
        ))
    }
}
