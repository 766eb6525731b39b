//! Heartbeats: pinging each tenant's workers over SQS ([`monitor`]) and
//! deciding whether they are alive ([`detector`]).

pub mod detector;
pub mod monitor;
