//! The SQS queue: receiving notifications, keeping a message invisible while its object is
//! being worked on, making it visible again for a retry, and deleting it once all is done.

use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};

use crate::daemon::aws;

/// SQS's most messages per receive and per batch call.
pub const MAX_BATCH: usize = 10;

/// A call to SQS that failed.
#[derive(Debug, thiserror::Error)]
#[error("SQS {action} on {queue} failed: {message}")]
pub struct QueueError {
    pub action: &'static str,
    pub queue: String,
    pub code: String,
    pub message: String,
}

/// A received message, with what veil needs to act on it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// How many times SQS has delivered it (1 on the first delivery).
    pub receive_count: u32,
}

#[derive(Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    pub fn new(client: aws_sdk_sqs::Client, url: String) -> Self {
        Self { client, url }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error<E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        action: &'static str,
        e: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
    ) -> QueueError {
        QueueError {
            action,
            queue: self.url.clone(),
            code: aws::error_code(e),
            message: aws::describe(e),
        }
    }

    /// Long-polls for up to `max` messages (at most 10), hiding them for `visibility`.
    pub async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage", &e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(received)
            .collect())
    }

    /// Sets one message's visibility timeout: a heartbeat for slow work, or a retry delay.
    pub async fn set_visibility(&self, receipt: &str, after: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(after.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("ChangeMessageVisibility", &e))
    }

    /// Makes messages visible again now (used at shutdown for unfinished work). Returns how
    /// many could not be released; they reappear when their visibility timeout ends.
    pub async fn release_now(&self, receipts: &[String]) -> usize {
        let mut failed = 0;
        for chunk in receipts.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect();
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => failed += out.failed.len(),
                Err(e) => {
                    tracing::warn!(error = %self.error("ChangeMessageVisibilityBatch", &e), "cannot release messages");
                    failed += chunk.len();
                }
            }
        }
        failed
    }

    /// Deletes up to 10 messages by receipt handle. Returns the positions (in `receipts`) that
    /// failed, with the reason; those messages will be delivered again and their work found done.
    pub async fn delete_batch(&self, receipts: &[String]) -> Vec<(usize, String)> {
        let request = receipts
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        match self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(request))
            .send()
            .await
        {
            Ok(out) => out
                .failed
                .into_iter()
                .filter_map(|f| {
                    let reason = format!("{}: {}", f.code, f.message.unwrap_or_default());
                    f.id.parse().ok().map(|i| (i, reason))
                })
                .collect(),
            Err(e) => {
                let reason = self.error("DeleteMessageBatch", &e).to_string();
                (0..receipts.len()).map(|i| (i, reason.clone())).collect()
            }
        }
    }

    /// Checks that the queue answers (for `veil check-config --connect`).
    pub async fn probe(&self) -> Result<(), QueueError> {
        self.depth().await.map(|_| ())
    }

    /// (visible, in flight) messages on the queue, as SQS approximates them.
    pub async fn depth(&self) -> Result<(i64, i64), QueueError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", &e))?;
        let count = |a: A| {
            out.attributes()
                .and_then(|m| m.get(&a))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(A::ApproximateNumberOfMessages),
            count(A::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

fn received(m: Message) -> Option<Received> {
    let receive_count = m
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    Some(Received {
        id: m.message_id?,
        receipt: m.receipt_handle?,
        body: m.body.unwrap_or_default(),
        receive_count,
    })
}
