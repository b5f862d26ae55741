//! DynamoDB's own account of what each call cost: every request asks for its consumed capacity
//! (`ReturnConsumedCapacity: TOTAL`, free on AWS), and the units reported are added to the
//! function's call counter, so each `request handled` and `batch handled` line carries the read
//! and write request units it spent (the bench prices them; issue 15).

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_sdk_dynamodb::operation::transact_get_items::{
    TransactGetItemsInput, TransactGetItemsOutput,
};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use lambda_kit::AwsCallCounter;

/// Asks for and records the capacity of every DynamoDB call of one client.
#[derive(Debug, Clone)]
pub struct CapacityMeter(pub AwsCallCounter);

fn total(c: &[ConsumedCapacity]) -> f64 {
    c.iter().filter_map(ConsumedCapacity::capacity_units).sum()
}

fn one(c: Option<&ConsumedCapacity>) -> f64 {
    total(c.map(std::slice::from_ref).unwrap_or_default())
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        macro_rules! ask {
            ($($t:ty),+) => {
                $(if let Some(i) = input.downcast_mut::<$t>() {
                    i.return_consumed_capacity = total;
                    return Ok(());
                })+
            };
        }
        ask!(
            GetItemInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            BatchWriteItemInput,
            TransactGetItemsInput,
            TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A failed call (a condition, a cancelled transaction) also consumes write units, but
        // its error does not say how many: those are not counted.
        let Ok(out) = context.output_or_error() else {
            return Ok(());
        };
        let (read, write) = if let Some(o) = out.downcast_ref::<GetItemOutput>() {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = out.downcast_ref::<QueryOutput>() {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = out.downcast_ref::<ScanOutput>() {
            (one(o.consumed_capacity()), 0.0)
        } else if let Some(o) = out.downcast_ref::<BatchGetItemOutput>() {
            (total(o.consumed_capacity()), 0.0)
        } else if let Some(o) = out.downcast_ref::<TransactGetItemsOutput>() {
            (total(o.consumed_capacity()), 0.0)
        } else if let Some(o) = out.downcast_ref::<PutItemOutput>() {
            (0.0, one(o.consumed_capacity()))
        } else if let Some(o) = out.downcast_ref::<UpdateItemOutput>() {
            (0.0, one(o.consumed_capacity()))
        } else if let Some(o) = out.downcast_ref::<DeleteItemOutput>() {
            (0.0, one(o.consumed_capacity()))
        } else if let Some(o) = out.downcast_ref::<BatchWriteItemOutput>() {
            (0.0, total(o.consumed_capacity()))
        } else if let Some(o) = out.downcast_ref::<TransactWriteItemsOutput>() {
            (0.0, total(o.consumed_capacity()))
        } else {
            (0.0, 0.0)
        };
        self.0.consumed(read, write);
        Ok(())
    }
}
