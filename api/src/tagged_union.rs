//! The OpenAPI schema of a union tagged by `kind` (`#[serde(tag = "kind")]` over newtype
//! variants). utoipa's derive inlines such variants as anonymous objects, which client
//! generators name badly or not at all (openapi-python-client writes duplicate models).
//! Here each variant is a component of its own that carries its `kind`, and the union
//! is a `oneOf` of references with `kind` as the discriminator.

use std::borrow::Cow;
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;

const TAG: &str = "kind";

type Components = Vec<(String, RefOr<Schema>)>;

/// One variant: its tag value and the component that holds its other fields.
pub struct Variant {
    kind: &'static str,
    name: Cow<'static, str>,
    schema: RefOr<Schema>,
    references: fn(&mut Components),
}

impl Variant {
    /// The variant tagged `kind`, whose fields are `T`'s.
    pub fn of<T: ToSchema>(kind: &'static str) -> Self {
        Variant {
            kind,
            name: T::name(),
            schema: T::schema(),
            references: T::schemas,
        }
    }
}

/// The union: one of the variants' components, told apart by `kind`.
pub fn schema(description: &str, variants: &[Variant]) -> RefOr<Schema> {
    let mapping = variants
        .iter()
        .map(|v| (v.kind, Ref::from_schema_name(v.name.as_ref()).ref_location));
    let mut union = OneOfBuilder::new()
        .description(Some(description))
        .discriminator(Some(Discriminator::with_mapping(TAG, mapping)));
    for variant in variants {
        union = union.item(Ref::from_schema_name(variant.name.as_ref()));
    }
    union.into()
}

/// The variants' components, each with its `kind` added as a required constant, and the
/// components they refer to.
pub fn components(variants: Vec<Variant>, out: &mut Components) {
    for variant in variants {
        let mut schema = variant.schema;
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let kind = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([variant.kind]));
            object.properties.insert(TAG.to_string(), kind.into());
            object.required.push(TAG.to_string());
        } else {
            panic!("variant {} is not an object schema", variant.name);
        }
        out.push((variant.name.into_owned(), schema));
        (variant.references)(out);
    }
}
