//! One page of a collection, and its schema `Page_<Item>`.
//!
//! utoipa's derive inlines a generic argument's whole schema, so each page would carry
//! an anonymous copy of its item (clients then generate a second model for it). This
//! schema refers to the item's component instead.

use serde::Serialize;
use std::borrow::Cow;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

/// One page of a collection; `next` is the cursor of the following page, if any.
#[derive(Serialize)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// utoipa names a generic body by composing `Page` with its argument (`Page_JobResponse`)
/// and asks this trait, rather than `PartialSchema`, for its schema. It is utoipa's
/// hidden API: an upgrade that moves it fails the build, and the drift test the rest.
impl<T: ToSchema> utoipa::__dev::ComposeSchema for Page<T> {
    fn compose(_inlined_arguments: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "One page of a collection; `next` is the cursor of the following page, if any.",
            ))
            .property(
                "items",
                ArrayBuilder::new().items(Ref::from_schema_name(T::name())),
            )
            .required("items")
            .property(
                "next",
                ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])),
            )
            .into()
    }
}

impl<T: ToSchema> ToSchema for Page<T> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Page")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}
