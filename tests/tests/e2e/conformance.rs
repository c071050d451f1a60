//! The conformance suite (`integration_tests::conformance`) against both backends: the same
//! assertions for DynamoDB, on the local DynamoDB, and for `MemoryStore`.

mod dynamodb {
    integration_tests::conformance_suite!(integration_tests::conformance::DynamoDb);
}

mod memory {
    integration_tests::conformance_suite!(integration_tests::conformance::Memory);
}
