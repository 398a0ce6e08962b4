//! History exports: a conversation's visible messages, page by page, streamed into one
//! JSON or CSV object. Memory stays bounded by one page and one storage part, however
//! long the history.

use bytes::Bytes;
use chat_domain::{ExportFormat, ExportRow};
use chat_jobs::JobFailure;
use chat_service::ChatService;

use crate::failure;

/// Messages read per query.
const PAGE: i64 = 1000;

/// Makes a CSV cell safe to open in a spreadsheet: a cell that starts like a formula
/// (`=`, `+`, `-`, `@`, or a tab or carriage return) gets a leading `'`.
pub fn csv_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Encodes one page of rows. `first` is true for the first page (CSV header, JSON `[`).
pub fn encode(format: ExportFormat, rows: &[ExportRow], first: bool) -> Result<Vec<u8>, String> {
    match format {
        ExportFormat::Json => {
            let mut out = Vec::with_capacity(rows.len() * 160);
            for (i, row) in rows.iter().enumerate() {
                out.extend_from_slice(if first && i == 0 { b"[\n" } else { b",\n" });
                serde_json::to_writer(&mut out, row).map_err(|e| e.to_string())?;
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 120));
            if first {
                w.write_record(["id", "remetente", "tipo", "conteudo", "timestamp"])
                    .map_err(|e| e.to_string())?;
            }
            for row in rows {
                let id = row.id.to_string();
                let timestamp = row.timestamp.to_rfc3339();
                w.write_record([
                    id.as_str(),
                    &csv_safe(&row.remetente),
                    row.tipo.as_str(),
                    &csv_safe(&row.conteudo),
                    timestamp.as_str(),
                ])
                .map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
    }
}

/// How the file ends, given whether any row was written.
fn trailer(format: ExportFormat, any_rows: bool) -> &'static [u8] {
    match (format, any_rows) {
        (ExportFormat::Json, true) => b"\n]\n",
        (ExportFormat::Json, false) => b"[]\n",
        (ExportFormat::Csv, true) => b"",
        (ExportFormat::Csv, false) => b"id,remetente,tipo,conteudo,timestamp\n",
    }
}

/// Runs one export from the start. A re-run (after a crash) starts over and replaces the
/// object whole, so exactly one correct file results.
pub async fn run(service: &ChatService, id: uuid::Uuid) -> Result<(), JobFailure> {
    let Some(export) = service.start_export(id).await.map_err(failure)? else {
        return Ok(()); // already done
    };
    let key = format!("exports/{}.{}", export.id, export.format.as_str());
    let mut writer = service.export_writer(&key).await.map_err(failure)?;
    let mut after = 0i64;
    let mut rows = 0i64;
    loop {
        let page = match service.export_rows(&export, after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                writer.abort().await;
                return Err(failure(e));
            }
        };
        let Some(last) = page.last() else { break };
        after = last.seq;
        let chunk = encode(export.format, &page, rows == 0).map_err(JobFailure::Permanent)?;
        rows += page.len() as i64;
        if let Err(e) = writer.write(Bytes::from(chunk)).await {
            writer.abort().await;
            return Err(failure(e.into()));
        }
        service.export_progress(id, rows).await.map_err(failure)?;
    }
    writer
        .write(Bytes::from_static(trailer(export.format, rows > 0)))
        .await
        .map_err(|e| failure(e.into()))?;
    writer.finish().await.map_err(|e| failure(e.into()))?;
    service
        .export_finished(id, &key, rows)
        .await
        .map_err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_domain::{MessageId, MessageKind};

    fn row(text: &str) -> ExportRow {
        ExportRow {
            id: MessageId::new(),
            remetente: "=cmd|' /C calc'!A0".into(),
            tipo: MessageKind::Text,
            conteudo: text.into(),
            timestamp: chrono::Utc::now(),
            seq: 1,
        }
    }

    #[test]
    fn csv_cells_that_look_like_formulas_are_escaped() {
        let out = String::from_utf8(
            encode(
                ExportFormat::Csv,
                &[row("+1"), row("hello, \"world\"")],
                true,
            )
            .expect("csv"),
        )
        .expect("utf8");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("id,remetente,tipo,conteudo,timestamp"));
        let first = lines.next().expect("row");
        assert!(first.contains(",'=cmd|' /C calc'!A0,text,'+1,"), "{first}");
        assert!(out.contains("\"hello, \"\"world\"\"\""));
        for s in ["-2", "@x", "=1", "\tx"] {
            assert!(csv_safe(s).starts_with('\''));
        }
        assert_eq!(csv_safe("plain"), "plain");
    }

    #[test]
    fn json_pages_concatenate_into_one_array() {
        let mut file = encode(ExportFormat::Json, &[row("a")], true).expect("json");
        file.extend(encode(ExportFormat::Json, &[row("b"), row("c")], false).expect("json"));
        file.extend_from_slice(trailer(ExportFormat::Json, true));
        let parsed: Vec<serde_json::Value> = serde_json::from_slice(&file).expect("one array");
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1]["conteudo"], "b");
        for field in ["id", "remetente", "tipo", "conteudo", "timestamp"] {
            assert!(parsed[0].get(field).is_some(), "{field}");
        }
        let empty: Vec<serde_json::Value> =
            serde_json::from_slice(trailer(ExportFormat::Json, false)).expect("empty");
        assert!(empty.is_empty());
    }
}
