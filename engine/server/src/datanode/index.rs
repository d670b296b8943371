//! An index build: read a sealed segment's data file, build the vector index of one field on the
//! blocking pool (`core.index_build_threads` threads), write it under the task's key. The index
//! covers every row (row offset = index position); deletes do not matter to it.

use ferrovus_core::CoreError;
use ferrovus_core::request::{IndexSpec, IndexType};
use ferrovus_core::schema::{CollectionSchema, DataType};
use ferrovus_core::segment::{SegmentData, SegmentMeta};
use ferrovus_core::value::Column;
use ferrovus_core::vindex;

use super::{Inner, Progress};
use crate::api::TaskOutput;

pub(super) async fn build(
    inner: &Inner,
    schema: &CollectionSchema,
    segment: &SegmentMeta,
    field_id: i64,
    spec: &IndexSpec,
    index_key: &str,
    progress: &Progress,
) -> Result<TaskOutput, CoreError> {
    let field_index = schema
        .field_index_by_id(field_id)
        .filter(|fi| schema.fields[*fi].data_type == DataType::FloatVector)
        .ok_or_else(|| {
            CoreError::invalid(
                "field_id",
                format!("field {field_id} is not a vector field of {}", schema.name),
            )
        })?;
    if spec.field_id != field_id {
        return Err(CoreError::invalid(
            "spec",
            format!(
                "the index definition is for field {}, the task for field {field_id}",
                spec.field_id
            ),
        ));
    }
    if spec.index_type == IndexType::Flat {
        return Err(CoreError::invalid(
            "index_type",
            "a FLAT index has nothing to build (searches are exact)",
        ));
    }
    let bytes = inner.objects.get(&segment.data_key).await?;
    progress.set(0.1);
    let (_, _, data) = SegmentData::decode(&bytes, schema, &segment.data_key)?;
    drop(bytes);
    if data.num_rows() != segment.num_rows {
        return Err(CoreError::corrupted(
            &segment.data_key,
            format!(
                "segment {} has {} rows, its metadata says {}",
                segment.segment_id,
                data.num_rows(),
                segment.num_rows
            ),
        ));
    }
    let Some(Column::FloatVector { dim, data: vectors }) =
        data.columns.into_iter().nth(field_index)
    else {
        return Err(CoreError::corrupted(
            &segment.data_key,
            "the vector column has the wrong type",
        ));
    };
    progress.set(0.2);
    let (spec2, threads) = (spec.clone(), inner.build_threads);
    let buf = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, CoreError> {
        let index = vindex::build(&spec2, dim, &vectors, threads)?;
        let mut buf = Vec::new();
        index.write_to(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(|e| CoreError::Internal(format!("index build task failed: {e}")))??;
    progress.set(0.9);
    inner.objects.put(index_key, buf.into()).await?;
    progress.set(1.0);
    Ok(TaskOutput::Index {
        segment_id: segment.segment_id,
        field_id,
        index_id: spec.index_id,
        key: index_key.to_string(),
    })
}
