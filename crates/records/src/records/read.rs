//! Reading records: one page of a list (rule, filter, sort, paging) and one record by id.

use pier_storage::{Dialect, Rows, Value as Db};
use serde_json::{Map, Value};

use crate::engine::{Engine, filter_error};
use crate::error::RecordError;
use crate::ids;
use crate::model::Collection;
use crate::query::{CollectionResolver, RequestInfo};
use crate::records::{ListQuery, ListResult};
use crate::schema::quote;

impl Engine {
    /// ` ORDER BY …` for a client's `sort`, or an empty string.
    fn order_by(
        &self,
        c: &Collection,
        sort: &str,
        req: &RequestInfo,
    ) -> Result<String, RecordError> {
        if sort.trim().is_empty() {
            return Ok(String::new());
        }
        let items = pier_filter::parse_sort(sort).map_err(|e| filter_error(&e, true))?;
        let all = self.collections();
        let mut r = CollectionResolver::new(&all, c, self.dialect(), req, true);
        r.for_sort = true;
        let dialect = r.filter_dialect();
        let sql = pier_filter::compile_sort(&items, dialect, &mut r)
            .map_err(|e| filter_error(&e, true))?;
        Ok(if sql.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {sql}")
        })
    }

    /// One page of records.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] by the list rule, [`RecordError::BadRequest`] for a bad sort
    /// or a filter (not supported yet), storage errors.
    pub async fn list(
        &self,
        c: &Collection,
        q: &ListQuery,
        req: &RequestInfo,
    ) -> Result<ListResult, RecordError> {
        let auth = &req.auth;
        let mut conditions = Vec::new();
        let mut params: Vec<Db> = Vec::new();
        if let Some((sql, p)) = self.rule_condition(c, &c.list_rule, req, 1)? {
            conditions.push(sql);
            params.extend(p);
        }
        if !q.filter.trim().is_empty() {
            let (sql, p) = self.condition(c, &q.filter, req, true, params.len() + 1)?;
            conditions.push(sql);
            params.extend(p);
        }
        let page = q.page.unwrap_or(1).max(1);
        let per_page = match q.per_page.unwrap_or(30) {
            n if n <= 0 => 30,
            n => n.min(1000),
        };
        let order = self.order_by(c, &q.sort, req)?;
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let n = params.len();
        let sql = format!(
            "SELECT {} FROM {}{filter}{order} LIMIT ${} OFFSET ${}",
            Self::columns(c),
            quote(&c.name),
            n + 1,
            n + 2
        );
        let count_sql =
            (!q.skip_total).then(|| format!("SELECT COUNT(*) FROM {}{filter}", quote(&c.name)));
        let offset = (page - 1).saturating_mul(per_page);
        let (rows, total) = if self.dialect() == Dialect::Postgres {
            // Over the network, one snapshot for the page and its count costs four round trips
            // in a row (BEGIN, two queries, ROLLBACK); two pooled connections at once cost one.
            // The count may then differ from the page by a concurrent write, as it may in
            // PocketBase.
            let count = async {
                match count_sql {
                    Some(s) => Ok::<_, RecordError>(
                        self.store
                            .query(s, params.clone())
                            .await?
                            .scalar()
                            .and_then(Db::as_i64),
                    ),
                    None => Ok(None),
                }
            };
            let mut page_params = params.clone();
            page_params.push(Db::Integer(per_page));
            page_params.push(Db::Integer(offset));
            let page = self.store.query(sql, page_params);
            let (rows, total) = tokio::join!(page, count);
            (rows?, total?)
        } else {
            self.store
                .read(move |tx| {
                    Box::pin(async move {
                        let total = match count_sql {
                            Some(s) => tx.query(&s, &params).await?.scalar().and_then(Db::as_i64),
                            None => None,
                        };
                        params.push(Db::Integer(per_page));
                        params.push(Db::Integer(offset));
                        let rows = tx.query(&sql, &params).await?;
                        Ok((rows, total))
                    })
                })
                .await?
        };
        let items = rows
            .iter()
            .map(|r| Self::row_json(c, &rows, r, auth))
            .collect();
        let (total_items, total_pages) = match total {
            Some(t) => (t, (t + per_page - 1) / per_page),
            None => (-1, -1),
        };
        Ok(ListResult {
            page,
            per_page,
            total_items,
            total_pages,
            items,
        })
    }

    /// One record, if it exists and `rule` lets this request see it.
    pub(crate) async fn fetch_visible(
        &self,
        c: &Collection,
        id: &str,
        rule: &Option<String>,
        req: &RequestInfo,
    ) -> Result<Option<(Rows, usize)>, RecordError> {
        let Some((sql, params)) = self.rule_condition(c, rule, req, 2)? else {
            return self.fetch(c, id).await;
        };
        if !ids::is_valid_record_id(id) {
            return Ok(None);
        }
        let mut all = vec![Db::Text(id.to_owned())];
        all.extend(params);
        let rows = self
            .store
            .query(
                format!(
                    "SELECT {} FROM {t} WHERE {t}.{} = $1 AND {sql}",
                    Self::columns(c),
                    quote("id"),
                    t = quote(&c.name)
                ),
                all,
            )
            .await?;
        Ok((!rows.is_empty()).then_some((rows, 0)))
    }

    pub(crate) async fn fetch(
        &self,
        c: &Collection,
        id: &str,
    ) -> Result<Option<(Rows, usize)>, RecordError> {
        if !ids::is_valid_record_id(id) {
            return Ok(None);
        }
        let rows = self
            .store
            .query(
                format!(
                    "SELECT {} FROM {} WHERE {} = $1",
                    Self::columns(c),
                    quote(&c.name),
                    quote("id")
                ),
                vec![id.into()],
            )
            .await?;
        Ok((!rows.is_empty()).then_some((rows, 0)))
    }

    /// True when a record with this id exists (no rule applied).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn exists(&self, c: &Collection, id: &str) -> Result<bool, RecordError> {
        Ok(self.fetch(c, id).await?.is_some())
    }

    /// One record.
    ///
    /// # Errors
    /// [`RecordError::Forbidden`] by the view rule, [`RecordError::NotFound`].
    pub async fn view(
        &self,
        c: &Collection,
        id: &str,
        req: &RequestInfo,
    ) -> Result<Map<String, Value>, RecordError> {
        let auth = &req.auth;
        let (rows, i) = self
            .fetch_visible(c, id, &c.view_rule, req)
            .await?
            .ok_or(RecordError::NotFound)?;
        let row: Vec<Db> = rows.iter().nth(i).map(<[Db]>::to_vec).unwrap_or_default();
        Ok(Self::row_json(c, &rows, &row, auth))
    }
}
