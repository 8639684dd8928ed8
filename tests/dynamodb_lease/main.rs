//! `DynamoDbLeaseTable` against moto's DynamoDB: the same results as the
//! in-memory reference table for random creates and writes, the KCL's item
//! layout read and written exactly, attributes of other tools kept by every
//! write, corrupt items reported, and lease workers sharing, handing over
//! and failing over leases on real time.
#![cfg(feature = "dynamodb")]

#[path = "../support/emulators.rs"]
#[allow(dead_code)]
mod emulators;

mod corrupt;
mod env;
mod kcl_items;
mod model;
mod transactional;
mod workers;
