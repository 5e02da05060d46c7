//! The DynamoDB adapter: the only module that calls the AWS SDK.
//!
//! One client is built per run and shared. BatchWriteItem, BatchGetItem and Scan pages are sent
//! with the SDK's own retries turned off, because ddbsync retries them (and counts the retries) with
//! the policy in [`crate::target::retry`] (`sync.max_attempts`); control-plane calls keep the
//! SDK's retries, as `target.max_attempts` / `retry_mode`, else `AWS_MAX_ATTEMPTS` /
//! `AWS_RETRY_MODE` or the AWS profile's, set them. So no call is retried by both, and a call's
//! attempts are bounded by one setting and by `target.operation_timeout_secs`.
//!
//! The region a profile leaves out comes from the SDK's own region chain ([`settle_region`]).

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, DeleteRequest, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, KeysAndAttributes, LocalSecondaryIndex,
    Projection as DdbProjection, ProjectionType, PutRequest, ReturnConsumedCapacity, ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;

use crate::profile::{Profile, ProfileError, Projection, TargetConfig};
use crate::pure::item::{AttributeValue, Item};
use crate::target::retry;
use crate::target::{IndexQuery, Reply, Request, ScanRequest, Target, TargetError, WriteReply};

pub use crate::target::{
    Condition, Fetched, Filter, IndexSchema, KeySchema, ScanPage, TableInfo, TableSchema, TABLE_WAIT,
};

#[derive(Clone)]
pub struct Dynamo {
    client: Client,
    /// The credential chain the client signs with, for `check` to test on its own.
    credentials: Option<aws_sdk_dynamodb::config::SharedCredentialsProvider>,
    /// The region, and the endpoint when it is not AWS's, for messages.
    location: String,
    /// Where the credential chain looks, for the message when it finds nothing.
    chain: String,
}

/// How the client is set up, and where each setting came from, for `check`: one place decides,
/// and [`Dynamo::connect`] uses it.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The endpoint requests go to, and where it came from.
    pub endpoint: (String, String),
    /// Control-plane retries: the mode, the attempts, and where they came from.
    pub retries: String,
    /// Connect, attempt and call timeouts.
    pub timeouts: String,
    retry_config: RetryConfig,
    timeout_config: TimeoutConfig,
}

/// A variable of the environment; empty is unset, as the SDK takes it.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE`, checked here: the SDK panics on a value it cannot use.
/// An error names the variable and the fix.
pub fn retry_env(max_attempts: Option<&str>, mode: Option<&str>) -> Result<(Option<u32>, Option<bool>), String> {
    let attempts = match max_attempts {
        None => None,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "AWS_MAX_ATTEMPTS=\"{text}\" is not a number of attempts from 1 to 100; fix it, unset it, or set \
                     target.max_attempts, which wins"
                ))
            }
        },
    };
    let adaptive = match mode.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
        None => None,
        Some("standard") => Some(false),
        Some("adaptive") => Some(true),
        Some(_) => {
            return Err(format!(
                "AWS_RETRY_MODE=\"{}\" is not supported; use standard or adaptive, unset it, or set target.retry_mode, \
                 which wins",
                mode.unwrap_or_default()
            ))
        }
    };
    Ok((attempts, adaptive))
}

/// The control-plane retry configuration and where it came from: the profile's keys win, then
/// `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`, then the AWS profile's `max_attempts` / `retry_mode` in
/// the shared config, then the SDK's default (standard, 3 attempts). Every value is checked here:
/// the SDK's own reader panics on one it cannot use.
async fn retry_setup(target: &TargetConfig) -> Result<(RetryConfig, String), String> {
    let (env_attempts, env_adaptive) = retry_env(var("AWS_MAX_ATTEMPTS").as_deref(), var("AWS_RETRY_MODE").as_deref())?;
    let (shared_attempts, shared_adaptive) =
        match (target.max_attempts.or(env_attempts), target.adaptive_retries.or(env_adaptive)) {
            // Both decided above the shared config: it is not read.
            (Some(_), Some(_)) => (None, None),
            _ => shared_retries(target).await?,
        };
    let (attempts, attempts_from) = match (target.max_attempts, env_attempts, shared_attempts) {
        (Some(n), _, _) => (n, "target.max_attempts"),
        (None, Some(n), _) => (n, "AWS_MAX_ATTEMPTS"),
        (None, None, Some(n)) => (n, "the AWS profile's max_attempts"),
        (None, None, None) => (3, "the SDK's default"),
    };
    let (adaptive, mode_from) = match (target.adaptive_retries, env_adaptive, shared_adaptive) {
        (Some(a), _, _) => (a, "target.retry_mode"),
        (None, Some(a), _) => (a, "AWS_RETRY_MODE"),
        (None, None, Some(a)) => (a, "the AWS profile's retry_mode"),
        (None, None, None) => (false, "the SDK's default"),
    };
    let config = match adaptive {
        true => RetryConfig::adaptive(),
        false => RetryConfig::standard(),
    }
    .with_max_attempts(attempts);
    let mode = if adaptive { "adaptive" } else { "standard" };
    Ok((config, format!("{mode} mode ({mode_from}), {attempts} attempts ({attempts_from})")))
}

/// `max_attempts` and `retry_mode` of the AWS profile in the shared config, read with the SDK's
/// own parser. A file the parser refuses gives none here (the credential chain says why).
async fn shared_retries(target: &TargetConfig) -> Result<(Option<u32>, Option<bool>), String> {
    use aws_types::os_shim_internal::{Env, Fs};
    // The alias of aws-runtime's `EnvConfigFiles`, the type `profile::load` takes: aws-runtime is
    // not a dependency of ddbsync's own.
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    let chosen = target.aws_profile.clone().map(std::borrow::Cow::Owned);
    let Ok(profiles) = aws_config::profile::load(&Fs::real(), &Env::real(), &files, chosen).await else {
        return Ok((None, None));
    };
    let name = profiles.selected_profile().to_string();
    let (attempts, mode) = (profiles.get("max_attempts"), profiles.get("retry_mode"));
    let bad = |key: &str, value: &str, allowed: &str, wins: &str| {
        format!(
            "the AWS profile \"{name}\" in {} has {key} = {}, which cannot be used ({allowed}); fix it there, or set \
             {wins}, which wins",
            config_file(),
            value.escape_debug()
        )
    };
    let attempts = match attempts {
        None => None,
        Some(text) => Some(
            retry_env(Some(text), None)
                .map_err(|_| bad("max_attempts", text, "a number of attempts from 1 to 100", "target.max_attempts"))?,
        ),
    };
    let adaptive = match mode {
        None => None,
        Some(text) => Some(
            retry_env(None, Some(text))
                .map_err(|_| bad("retry_mode", text, "standard or adaptive", "target.retry_mode"))?,
        ),
    };
    Ok((attempts.and_then(|(a, _)| a), adaptive.and_then(|(_, m)| m)))
}

/// Everything the client is built with; an error is a setting that cannot be used (the message
/// names it).
pub async fn setup(target: &TargetConfig) -> Result<Setup, String> {
    let (retry_config, retries) = retry_setup(target).await?;
    let endpoint = match (&target.endpoint_url, var("AWS_ENDPOINT_URL_DYNAMODB"), var("AWS_ENDPOINT_URL")) {
        (Some(url), _, _) => (url.clone(), "target.endpoint_url".to_string()),
        (None, Some(url), _) => (url, "AWS_ENDPOINT_URL_DYNAMODB".to_string()),
        (None, None, Some(url)) => (url, "AWS_ENDPOINT_URL".to_string()),
        (None, None, None) => {
            (format!("https://dynamodb.{}.amazonaws.com", target.region), "AWS's, for the region".to_string())
        }
    };
    let timeouts = format!(
        "connect {}s, attempt {}s, call {}s with its retries (target.connect_timeout_secs, attempt_timeout_secs, \
         operation_timeout_secs)",
        target.connect_timeout.as_secs(),
        target.attempt_timeout.as_secs(),
        target.operation_timeout.as_secs()
    );
    let timeout_config = TimeoutConfig::builder()
        .connect_timeout(target.connect_timeout)
        .operation_attempt_timeout(target.attempt_timeout)
        // Every call ends within this, retries included: a DynamoDB that stops answering ends the
        // run instead of holding it.
        .operation_timeout(target.operation_timeout)
        .build();
    Ok(Setup { endpoint, retries, timeouts, retry_config, timeout_config })
}

/// Where a profile without `target.region` gets one: the SDK's region chain, link by link so that
/// `check` can say which gave it (the environment's `AWS_REGION`, else `AWS_DEFAULT_REGION`; the
/// AWS profile's `region` in the shared config; the EC2 instance metadata service). Also checks
/// the retry settings, so that a bad one is a profile error before anything is contacted.
pub async fn settle_region(profile: &mut Profile) -> Result<(), ProfileError> {
    if let Err(message) = retry_setup(&profile.target).await {
        return Err(ProfileError::new(&profile.path, message));
    }
    if profile.region_settled() {
        return Ok(());
    }
    use aws_config::meta::region::ProvideRegion;
    let aws_profile = profile.target.aws_profile.clone().or_else(|| var("AWS_PROFILE"));
    let (name, named_by) = match (&profile.target.aws_profile, var("AWS_PROFILE")) {
        (Some(name), _) => (name.clone(), "target.aws_profile"),
        (None, Some(name)) => (name, "AWS_PROFILE"),
        (None, None) => ("default".to_string(), "the default"),
    };
    // Read here rather than by the SDK's provider, which takes an empty AWS_REGION as the region "".
    let from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|name| region_var(name).map(|region| (Region::new(region), name.to_string())));
    let found = match from_env {
        Some(found) => Some(found),
        None => {
            let mut file = aws_config::profile::region::ProfileFileRegionProvider::builder();
            if let Some(name) = &aws_profile {
                file = file.profile_name(name);
            }
            match file.build().region().await {
                Some(region) => {
                    Some((region, format!("region of AWS profile \"{name}\" ({named_by}) in {}", config_file())))
                }
                None => aws_config::imds::region::ImdsRegionProvider::builder()
                    .build()
                    .region()
                    .await
                    .map(|region| (region, "the EC2 instance metadata service".to_string())),
            }
        }
    };
    let Some((region, origin)) = found else {
        let imds = match var("AWS_EC2_METADATA_DISABLED") {
            Some(v) if v.eq_ignore_ascii_case("true") => "disabled by AWS_EC2_METADATA_DISABLED",
            _ => "no answer",
        };
        let file = match shared_profile_state(&name).await {
            Missing::File => format!("{} does not exist", config_file()),
            Missing::Profile => format!("{} has no AWS profile \"{name}\" ({named_by})", config_file()),
            Missing::Region => {
                format!("AWS profile \"{name}\" ({named_by}) in {} has no region", config_file())
            }
        };
        return Err(ProfileError::new(
            &profile.path,
            format!(
                "no AWS region: the profile has no target.region, and AWS's chain found none: AWS_REGION and \
                 AWS_DEFAULT_REGION are not set (or empty), {file}, and the EC2 instance metadata service gave none \
                 ({imds}); set target.region = \"us-east-1\" (your region) in this file, or export AWS_REGION"
            ),
        ));
    };
    profile.settle_region(region.to_string(), origin)
}

/// A region variable; empty or blank is unset (the SDK's provider would take "" as a region).
fn region_var(name: &str) -> Option<String> {
    var(name).filter(|v| !v.trim().is_empty())
}

/// What the shared config file lacks, for the message when no region is found: the file, the
/// AWS profile, or only the profile's region.
enum Missing {
    File,
    Profile,
    Region,
}

async fn shared_profile_state(name: &str) -> Missing {
    use aws_types::os_shim_internal::{Env, Fs};
    let path = match var("AWS_CONFIG_FILE") {
        Some(path) => Some(std::path::PathBuf::from(path)),
        None => var("HOME").map(|home| std::path::Path::new(&home).join(".aws").join("config")),
    };
    if !path.is_some_and(|p| p.is_file()) {
        return Missing::File;
    }
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    match aws_config::profile::load(&Fs::real(), &Env::real(), &files, Some(name.to_string().into())).await {
        Ok(profiles) if profiles.get_profile(name).is_some() => Missing::Region,
        _ => Missing::Profile,
    }
}

/// The shared config file the SDK reads, for messages.
fn config_file() -> String {
    match var("AWS_CONFIG_FILE") {
        Some(path) => format!("{path} (AWS_CONFIG_FILE)"),
        None => "~/.aws/config".to_string(),
    }
}

/// The name of the provider that gave credentials (`Environment`, `ProfileFile`, `WebIdentityToken`,
/// `EcsContainer`, `IMDSv2`…). The SDK keeps it private but shows it in the credentials' `Debug`,
/// which redacts the secret; the access key id is read past, never kept.
pub fn provider_name(credentials: &aws_credential_types::Credentials) -> String {
    let shown = format!("{credentials:?}");
    shown
        .split_once("provider_name: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| "an unnamed provider".to_string())
}

/// Turns an SDK error into the seam's typed error, by DynamoDB's error code and the HTTP status.
/// A credential chain that found nothing is said as such, not as a DynamoDB that did not answer:
/// no request was sent.
fn target_error<E>(err: SdkError<E, HttpResponse>, chain: &str) -> TargetError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(missing) = credentials_error(&err) {
        return TargetError::Fatal(no_credentials(chain, missing));
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    let message = match (&err, err.message()) {
        (_, Some(m)) => m.to_string(),
        // No answer: the innermost cause ("Connection refused (os error 111)") is what a user can act on.
        (SdkError::DispatchFailure(_), None) => format!("no answer from DynamoDB: {}", root_cause(&err)),
        (SdkError::TimeoutError(_), None) => format!(
            "no answer from DynamoDB in time: {}; check the endpoint (target.endpoint_url) and the network \
             (target.operation_timeout_secs bounds each call, its retries included)",
            root_cause(&err)
        ),
        // An answer without DynamoDB's error code (`__type`): a web server, a proxy's error page,
        // a wrong path. The SDK's own account of it is a dump of the raw response.
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), None) if err.code().is_none() => match status {
            Some(status) => not_dynamodb(status),
            None => DisplayErrorContext(&err).to_string(),
        },
        (_, None) => DisplayErrorContext(&err).to_string(),
    };
    retry::classify(err.code(), status, message)
}

/// The message for an endpoint whose answer is not DynamoDB's.
fn not_dynamodb(status: u16) -> String {
    format!(
        "the endpoint answered HTTP {status} without a DynamoDB error code; it does not look like DynamoDB: check \
         target.endpoint_url (or AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL): it is the server's base URL, such as \
         http://localhost:8000, with no path"
    )
}

/// The credential chain's error, when that is why a call failed.
fn credentials_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// No credentials: where the chain looked, what the SDK says of its last try, and how to give some.
fn no_credentials(chain: &str, err: &CredentialsError) -> String {
    // The SDK's account spans lines ("no credentials found in chain. Attempted:\n  Environment: …").
    let mut reason = String::new();
    for line in root_cause(err).lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !reason.is_empty() {
            reason.push_str(if reason.ends_with(':') { " " } else { "; " });
        }
        reason.push_str(line);
    }
    format!(
        "no AWS credentials: the credential chain looked at, in order, {chain}, and found none it could use (the SDK says: \
         {reason}). Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials or \
         ~/.aws/config with AWS_PROFILE or target.aws_profile (`aws configure`, `aws sso login`), or run where an \
         instance or task role applies"
    )
}

/// Where AWS's default credential chain looks, in its order, as this process's environment and
/// the profile's `aws_profile` set it up.
fn chain_description(aws_profile: Option<&str>) -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let set = |name: &str| if var(name).is_some() { format!("{name} set") } else { format!("{name} not set") };
    let keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (None, None) => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set)".to_string(),
        _ => format!(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({}, {})",
            set("AWS_ACCESS_KEY_ID"),
            set("AWS_SECRET_ACCESS_KEY")
        ),
    };
    let (profile, from) = match (aws_profile, var("AWS_PROFILE")) {
        (Some(name), _) => (name.to_string(), "from target.aws_profile"),
        (None, Some(name)) => (name, "from AWS_PROFILE"),
        (None, None) => ("default".to_string(), "neither AWS_PROFILE nor target.aws_profile is set"),
    };
    let home = var("HOME").map(std::path::PathBuf::from);
    let file = |variable: &str, name: &str| {
        let path =
            var(variable).map(std::path::PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)));
        match path {
            Some(path) if path.exists() => path.display().to_string(),
            Some(path) => format!("{} (absent)", path.display()),
            None => format!("~/.aws/{name} (HOME not set)"),
        }
    };
    let imds = match var("AWS_EC2_METADATA_DISABLED") {
        Some(v) if v.eq_ignore_ascii_case("true") => " (disabled by AWS_EC2_METADATA_DISABLED)",
        _ => "",
    };
    format!(
        "{keys}; profile \"{profile}\" ({from}) in {} and {}; a web identity token ({}); the ECS container \
         credentials ({}); the EC2 instance metadata service{imds}",
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        file("AWS_CONFIG_FILE", "config"),
        set("AWS_WEB_IDENTITY_TOKEN_FILE"),
        set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    )
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The production target for a profile: one client, built once and shared by the run.
pub async fn connect(target: &TargetConfig) -> Arc<dyn Target> {
    Arc::new(Dynamo::connect(target).await)
}

impl Dynamo {
    /// Builds the client: region, optional endpoint and AWS profile, retries and bounded timeouts
    /// as [`setup`] decides them.
    pub async fn connect(target: &TargetConfig) -> Dynamo {
        // `settle_region` has checked the retry settings before any command gets here.
        let (retry_config, timeout_config) = match setup(target).await {
            Ok(setup) => (setup.retry_config, setup.timeout_config),
            Err(_) => {
                (RetryConfig::standard(), TimeoutConfig::builder().operation_timeout(target.operation_timeout).build())
            }
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(target.region.clone()))
            .timeout_config(timeout_config)
            .retry_config(retry_config);
        if let Some(url) = &target.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(name) = &target.aws_profile {
            loader = loader.profile_name(name);
        }
        let config = loader.load().await;
        let location = match &target.endpoint_url {
            Some(url) => format!("{} ({url})", target.region),
            None => target.region.clone(),
        };
        Dynamo {
            client: Client::new(&config),
            credentials: config.credentials_provider(),
            location,
            chain: chain_description(target.aws_profile.as_deref()),
        }
    }

    /// `None` when the table does not exist.
    async fn describe(&self, table: &str) -> Result<Option<TableInfo>, TargetError> {
        let out = match self.client.describe_table().table_name(table).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(None),
            Err(e) => return Err(target_error(e, &self.chain)),
        };
        let Some(desc) = out.table() else { return Ok(None) };
        let types: HashMap<&str, &str> =
            desc.attribute_definitions().iter().map(|d| (d.attribute_name(), d.attribute_type().as_str())).collect();
        let keys = |elements: &[KeySchemaElement]| -> KeySchema {
            let mut keys: Vec<(&KeyType, String, String)> = elements
                .iter()
                .map(|k| {
                    let name = k.attribute_name();
                    (k.key_type(), name.to_string(), types.get(name).copied().unwrap_or("?").to_string())
                })
                .collect();
            keys.sort_by_key(|(kt, _, _)| **kt != KeyType::Hash);
            keys.into_iter().map(|(_, n, t)| (n, t)).collect()
        };
        let indexes_building = desc
            .global_secondary_indexes()
            .iter()
            .filter(|i| i.index_status().is_some_and(|s| *s != aws_sdk_dynamodb::types::IndexStatus::Active))
            .count();
        let global = desc
            .global_secondary_indexes()
            .iter()
            .map(|i| (false, i.index_name().unwrap_or_default(), keys(i.key_schema()), i.projection()));
        let local = desc
            .local_secondary_indexes()
            .iter()
            .map(|i| (true, i.index_name().unwrap_or_default(), keys(i.key_schema()), i.projection()));
        let indexes = global
            .chain(local)
            .map(|(local, name, keys, projection)| IndexSchema {
                name: name.to_string(),
                local,
                keys,
                projection: match projection.and_then(|p| p.projection_type()) {
                    Some(ProjectionType::KeysOnly) => Projection::KeysOnly,
                    Some(ProjectionType::Include) => {
                        Projection::Include(projection.map(|p| p.non_key_attributes().to_vec()).unwrap_or_default())
                    }
                    _ => Projection::All,
                },
            })
            .collect();
        Ok(Some(TableInfo {
            status: desc.table_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            key_schema: keys(desc.key_schema()),
            indexes,
            indexes_building,
            item_count: desc.item_count().unwrap_or(0).max(0) as u64,
            created: desc.creation_date_time().map(|t| t.as_secs_f64()),
        }))
    }

    /// Creates an on-demand table with this key and these secondary indexes.
    async fn create_table(&self, table: &str, schema: &TableSchema) -> Result<(), TargetError> {
        let mut request = self.client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest);
        request = request.set_attribute_definitions(Some(attribute_definitions(&schema.keys, &schema.indexes)?));
        request = request.set_key_schema(Some(key_elements(&schema.keys)?));
        for index in &schema.indexes {
            let projection = projection(&index.projection);
            let keys = Some(key_elements(&index.keys)?);
            request = if index.local {
                request.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(keys)
                        .projection(projection)
                        .build()
                        .map_err(fatal)?,
                )
            } else {
                request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(&index.name)
                        .set_key_schema(keys)
                        .projection(projection)
                        .build()
                        .map_err(fatal)?,
                )
            };
        }
        request.send().await.map_err(|e| target_error(e, &self.chain))?;
        Ok(())
    }

    /// Adds a global secondary index to an existing table and waits until DynamoDB has filled it
    /// from the table's items (a local index cannot be added after creation).
    async fn add_index(&self, table: &str, keys: &KeySchema, index: &IndexSchema) -> Result<(), TargetError> {
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_elements(&index.keys)?))
            .projection(projection(&index.projection))
            .build()
            .map_err(fatal)?;
        self.client
            .update_table()
            .table_name(table)
            .set_attribute_definitions(Some(attribute_definitions(keys, std::slice::from_ref(index))?))
            .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
            .send()
            .await
            .map_err(|e| target_error(e, &self.chain))?;
        Ok(())
    }

    async fn delete_table(&self, table: &str) -> Result<(), TargetError> {
        match self.client.delete_table().table_name(table).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(target_error(e, &self.chain)),
        }
    }

    async fn scan(&self, table: &str, scan: ScanRequest<'_>) -> Result<ScanPage, TargetError> {
        let ScanRequest { index, attributes, segment: (segment, total_segments), start, limit, filter } = scan;
        let mut request = self
            .client
            .scan()
            .table_name(table)
            .set_index_name(index.map(str::to_string))
            .segment(segment)
            .total_segments(total_segments)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_limit(limit)
            .set_exclusive_start_key(start.cloned());
        // Placeholders keep reserved words (`name`, `level`…) usable as key names; `#a0`… so that they
        // stay apart from a filter's own `#names`.
        let projection: Vec<String> = (0..attributes.len()).map(|i| format!("#a{i}")).collect();
        if !projection.is_empty() {
            request = request.projection_expression(projection.join(", "));
        }
        for (placeholder, name) in projection.iter().zip(attributes) {
            request = request.expression_attribute_names(placeholder, name);
        }
        if let Some(filter) = filter {
            request = request
                .filter_expression(&filter.expression)
                .set_expression_attribute_values(Some(filter.values.clone()).filter(|v| !v.is_empty()));
            for (placeholder, name) in &filter.names {
                request = request.expression_attribute_names(placeholder, name);
            }
        }
        // Pages are retried (and counted) by the caller, like batch writes.
        let out =
            request.customize().config_override(no_retries()).send().await.map_err(|e| target_error(e, &self.chain))?;
        Ok(ScanPage {
            consumed_units: out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0),
            next: out.last_evaluated_key().filter(|k| !k.is_empty()).cloned(),
            items: out.items.unwrap_or_default(),
        })
    }

    async fn query_index(&self, table: &str, query: IndexQuery<'_>) -> Result<ScanPage, TargetError> {
        let IndexQuery { index, partition: (name, value), start, filter } = query;
        // `#p`/`:p`: a filter's own placeholders are `#name` and `:name` of the scope.
        let mut request = self
            .client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", name)
            .expression_attribute_values(":p", value.clone())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start.cloned());
        if let Some(filter) = filter {
            request = request.filter_expression(&filter.expression);
            for (placeholder, value) in &filter.values {
                request = request.expression_attribute_values(placeholder, value.clone());
            }
            for (placeholder, name) in &filter.names {
                request = request.expression_attribute_names(placeholder, name);
            }
        }
        // Pages are retried (and counted) by the caller, like Scan pages.
        let out =
            request.customize().config_override(no_retries()).send().await.map_err(|e| target_error(e, &self.chain))?;
        Ok(ScanPage {
            consumed_units: out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0),
            next: out.last_evaluated_key().filter(|k| !k.is_empty()).cloned(),
            items: out.items.unwrap_or_default(),
        })
    }

    /// Writes one item (run records); returns the units consumed.
    async fn put_item(&self, table: &str, item: Item) -> Result<f64, TargetError> {
        let out = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| target_error(e, &self.chain))?;
        Ok(out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0))
    }
}

impl Dynamo {
    /// Checks that the credential chain yields credentials, before any call needs them.
    async fn credentials(&self) -> Result<String, String> {
        use aws_sdk_dynamodb::config::ProvideCredentials;
        let provider = self.credentials.as_ref().ok_or("no credential provider is configured")?;
        provider.provide_credentials().await.map(|c| provider_name(&c)).map_err(|e| no_credentials(&self.chain, &e))
    }

    /// Reads up to 100 items by key with strongly consistent reads.
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Fetched, TargetError> {
        let wanted = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build().map_err(fatal)?;
        let out = self
            .client
            .batch_get_item()
            .request_items(table, wanted)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| target_error(e, &self.chain))?;
        Ok(Fetched {
            consumed_units: out.consumed_capacity().iter().filter_map(|c| c.capacity_units()).sum(),
            items: out.responses.unwrap_or_default().into_values().flatten().collect(),
            unprocessed: out.unprocessed_keys.unwrap_or_default().into_values().flat_map(|k| k.keys).collect(),
        })
    }

    /// Whether DynamoDB accepts `filter`, tried as the filter of a Query of one partition
    /// (`pk_name = pk`, where no item should be) of at most one item: DynamoDB judges the
    /// expression before it reads, the call costs half a read unit, and it needs only the Query
    /// permission a sync has on the metadata table.
    async fn try_filter(&self, table: &str, (pk_name, pk): (&str, &str), filter: &Filter) -> Result<(), TargetError> {
        // Placeholders of letters only, apart from the filter's own (`:name`s are parameter names).
        let mut request = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#ddbsyncpartition = :ddbsyncpartition")
            .expression_attribute_names("#ddbsyncpartition", pk_name)
            .expression_attribute_values(":ddbsyncpartition", AttributeValue::S(pk.into()))
            .filter_expression(&filter.expression)
            .limit(1);
        for (placeholder, value) in &filter.values {
            request = request.expression_attribute_values(placeholder, value.clone());
        }
        for (placeholder, name) in &filter.names {
            request = request.expression_attribute_names(placeholder, name);
        }
        request.send().await.map(|_| ()).map_err(|e| target_error(e, &self.chain))
    }

    /// Every item of one partition (`pk_name = pk`) whose sort key is at least `sk_from`, in order.
    async fn query_from(
        &self,
        table: &str,
        (pk_name, pk): (&str, &str),
        (sk_name, sk_from): (&str, &str),
    ) -> Result<Vec<Item>, TargetError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("#pk = :pk AND #sk >= :sk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .expression_attribute_values(":sk", AttributeValue::S(sk_from.into()))
                .set_exclusive_start_key(start)
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                // A table that does not exist holds nothing (`status` reads the metadata table
                // with Query alone, before any run has created it).
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                    return Ok(items)
                }
                Err(e) => return Err(target_error(e, &self.chain)),
            };
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            items.extend(out.items.unwrap_or_default());
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

impl Dynamo {
    /// Reads one item with a strongly consistent read.
    async fn get_item(&self, table: &str, key: Item) -> Result<Option<Item>, TargetError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| target_error(e, &self.chain))?;
        Ok(out.item)
    }

    /// Writes one item if `condition` holds; `Ok(false)` when it does not.
    async fn put_if(&self, table: &str, item: Item, condition: Condition<'_>) -> Result<bool, TargetError> {
        let request = self.client.put_item().table_name(table).set_item(Some(item));
        let (values, names) = (condition_values(&condition), condition_names(&condition));
        let request = request.condition_expression(condition.expression).set_expression_attribute_names(names);
        condition_met(request.set_expression_attribute_values(values).send().await, &self.chain)
    }

    /// Deletes one item if `condition` holds; `Ok(false)` when it does not.
    async fn delete_if(&self, table: &str, key: Item, condition: Condition<'_>) -> Result<bool, TargetError> {
        let request = self.client.delete_item().table_name(table).set_key(Some(key));
        let (values, names) = (condition_values(&condition), condition_names(&condition));
        let request = request.condition_expression(condition.expression).set_expression_attribute_names(names);
        condition_met(request.set_expression_attribute_values(values).send().await, &self.chain)
    }
}

/// A condition's values as the SDK takes them: none at all rather than an empty map, which
/// DynamoDB refuses.
fn condition_values(condition: &Condition<'_>) -> Option<HashMap<String, AttributeValue>> {
    let values: HashMap<String, AttributeValue> =
        condition.values.iter().filter(|(k, _)| !k.starts_with('#')).map(|(k, v)| (k.to_string(), v.clone())).collect();
    (!values.is_empty()).then_some(values)
}

/// A condition's `#name` entries as the SDK takes them (see [`Condition`]), none at all when it has
/// none.
fn condition_names(condition: &Condition<'_>) -> Option<HashMap<String, String>> {
    let names: HashMap<String, String> = condition
        .values
        .iter()
        .filter(|(k, _)| k.starts_with('#'))
        .filter_map(|(k, v)| v.as_s().ok().map(|name| (k.to_string(), name.clone())))
        .collect();
    (!names.is_empty()).then_some(names)
}

/// A conditional write's answer: done, or the condition did not hold.
fn condition_met<T, E>(result: Result<T, SdkError<E, HttpResponse>>, chain: &str) -> Result<bool, TargetError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(target_error(e, chain)),
    }
}

/// The definitions of every key attribute of a table and its indexes, each once.
fn attribute_definitions(keys: &KeySchema, indexes: &[IndexSchema]) -> Result<Vec<AttributeDefinition>, TargetError> {
    let mut defined: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (name, ty) in keys.iter().chain(indexes.iter().flat_map(|i| i.keys.iter())) {
        if !defined.contains(&name.as_str()) {
            defined.push(name);
            let definition = AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(ty.as_str()))
                .build()
                .map_err(fatal)?;
            out.push(definition);
        }
    }
    Ok(out)
}

fn projection(projection: &Projection) -> DdbProjection {
    match projection {
        Projection::All => DdbProjection::builder().projection_type(ProjectionType::All),
        Projection::KeysOnly => DdbProjection::builder().projection_type(ProjectionType::KeysOnly),
        Projection::Include(names) => DdbProjection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.clone())),
    }
    .build()
}

/// A key schema as the SDK takes it: the partition key (HASH) first, then the sort key (RANGE).
fn key_elements(keys: &KeySchema) -> Result<Vec<KeySchemaElement>, TargetError> {
    keys.iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let key_type = if i == 0 { KeyType::Hash } else { KeyType::Range };
            KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(fatal)
        })
        .collect()
}

/// For calls whose retries ddbsync makes and counts itself.
fn no_retries() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default().retry_config(RetryConfig::disabled())
}

fn fatal(e: impl std::fmt::Display) -> TargetError {
    TargetError::Fatal(e.to_string())
}

impl Dynamo {
    async fn batch_write(&self, table: &str, requests: &[Request]) -> Result<WriteReply, TargetError> {
        let requests = requests
            .iter()
            .map(|request| {
                Ok(match request {
                    Request::Put(item) => WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item.clone())).build().map_err(fatal)?)
                        .build(),
                    Request::Delete(key) => WriteRequest::builder()
                        .delete_request(DeleteRequest::builder().set_key(Some(key.clone())).build().map_err(fatal)?)
                        .build(),
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        let out = self
            .client
            .batch_write_item()
            .request_items(table, requests)
            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
            .customize()
            .config_override(no_retries())
            .send()
            .await
            .map_err(|e| target_error(e, &self.chain))?;
        let consumed_units = out.consumed_capacity().iter().filter_map(|c| c.capacity_units()).sum();
        let unprocessed = out
            .unprocessed_items
            .unwrap_or_default()
            .into_values()
            .flatten()
            .filter_map(|request| match (request.put_request, request.delete_request) {
                (Some(put), _) => Some(Request::Put(put.item)),
                (None, Some(delete)) => Some(Request::Delete(delete.key)),
                (None, None) => None,
            })
            .collect();
        Ok(WriteReply { unprocessed, consumed_units })
    }
}

/// The production target: every call goes to DynamoDB.
impl Target for Dynamo {
    fn endpoint(&self) -> &str {
        &self.location
    }

    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(Dynamo::credentials(self))
    }

    fn describe<'a>(&'a self, table: &'a str) -> Reply<'a, Option<TableInfo>> {
        Box::pin(Dynamo::describe(self, table))
    }

    fn create_table<'a>(&'a self, table: &'a str, schema: &'a TableSchema) -> Reply<'a, ()> {
        Box::pin(Dynamo::create_table(self, table, schema))
    }

    fn add_index<'a>(&'a self, table: &'a str, keys: &'a KeySchema, index: &'a IndexSchema) -> Reply<'a, ()> {
        Box::pin(Dynamo::add_index(self, table, keys, index))
    }

    fn delete_table<'a>(&'a self, table: &'a str) -> Reply<'a, ()> {
        Box::pin(Dynamo::delete_table(self, table))
    }

    fn scan<'a>(&'a self, table: &'a str, request: ScanRequest<'a>) -> Reply<'a, ScanPage> {
        Box::pin(Dynamo::scan(self, table, request))
    }

    fn query_index<'a>(&'a self, table: &'a str, query: IndexQuery<'a>) -> Reply<'a, ScanPage> {
        Box::pin(Dynamo::query_index(self, table, query))
    }

    fn batch_write<'a>(&'a self, table: &'a str, requests: &'a [Request]) -> Reply<'a, WriteReply> {
        Box::pin(Dynamo::batch_write(self, table, requests))
    }

    fn batch_get<'a>(&'a self, table: &'a str, keys: Vec<Item>) -> Reply<'a, Fetched> {
        Box::pin(Dynamo::batch_get(self, table, keys))
    }

    fn try_filter<'a>(&'a self, table: &'a str, partition: (&'a str, &'a str), filter: &'a Filter) -> Reply<'a, ()> {
        Box::pin(Dynamo::try_filter(self, table, partition, filter))
    }

    fn query_from<'a>(
        &'a self,
        table: &'a str,
        partition: (&'a str, &'a str),
        sort_from: (&'a str, &'a str),
    ) -> Reply<'a, Vec<Item>> {
        Box::pin(Dynamo::query_from(self, table, partition, sort_from))
    }

    fn get_item<'a>(&'a self, table: &'a str, key: Item) -> Reply<'a, Option<Item>> {
        Box::pin(Dynamo::get_item(self, table, key))
    }

    fn put_item<'a>(&'a self, table: &'a str, item: Item) -> Reply<'a, f64> {
        Box::pin(Dynamo::put_item(self, table, item))
    }

    fn put_if<'a>(&'a self, table: &'a str, item: Item, condition: Condition<'a>) -> Reply<'a, bool> {
        Box::pin(Dynamo::put_if(self, table, item, condition))
    }

    fn delete_if<'a>(&'a self, table: &'a str, key: Item, condition: Condition<'a>) -> Reply<'a, bool> {
        Box::pin(Dynamo::delete_if(self, table, key, condition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conditions_hash_entries_are_attribute_names_and_the_rest_values() {
        let s = |v: &str| AttributeValue::S(v.into());
        let condition = Condition {
            expression: "#h = :h AND attribute_exists(#k)",
            values: vec![(":h", s("abc")), ("#h", s("_ddbsync_hash")), ("#k", s("name"))],
        };
        assert_eq!(condition_values(&condition), Some(HashMap::from([(":h".to_string(), s("abc"))])));
        let names =
            HashMap::from([("#h".to_string(), "_ddbsync_hash".to_string()), ("#k".to_string(), "name".to_string())]);
        assert_eq!(condition_names(&condition), Some(names));
        let plain = Condition { expression: "attribute_not_exists(pk)", values: vec![] };
        assert_eq!((condition_values(&plain), condition_names(&plain)), (None, None), "none rather than empty maps");
    }

    #[test]
    fn a_credentials_error_is_found_in_the_chain_and_said_on_one_line() {
        // The chain's own account spans lines; the message keeps it on one, after where it looked.
        let sdk = "no credentials found in chain. Attempted:\n  Environment: not enabled\n  Profile: not enabled\n";
        let err = CredentialsError::not_loaded(sdk);
        let wrapped: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
        let found = credentials_error(wrapped.as_ref()).expect("found");
        let message = no_credentials("the variables; the profile", found);
        assert!(
            message.starts_with(
                "no AWS credentials: the credential chain looked at, in order, the variables; the profile, and found \
                 none it could use (the SDK says: no credentials found in chain. Attempted: Environment: not \
                 enabled; Profile: not enabled). Export AWS_ACCESS_KEY_ID"
            ),
            "{message}"
        );
        let other = std::io::Error::other("connection refused");
        assert!(credentials_error(&other).is_none());
    }
}

#[cfg(test)]
mod setup_tests {
    use super::*;

    #[test]
    fn the_provider_name_is_read_and_no_key_kept() {
        let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "SeCrEt-key-9", None, None, "Environment");
        let name = provider_name(&creds);
        assert_eq!(name, "Environment");
        let profile = aws_credential_types::Credentials::new("AKID", "s", Some("token".into()), None, "ProfileFile");
        assert_eq!(provider_name(&profile), "ProfileFile");
    }

    #[test]
    fn retry_variables_are_checked_before_the_sdk_sees_them() {
        assert_eq!(retry_env(None, None).unwrap(), (None, None));
        assert_eq!(retry_env(Some("4"), Some("Adaptive")).unwrap(), (Some(4), Some(true)));
        assert_eq!(retry_env(Some(" 1"), Some("standard")).unwrap(), (Some(1), Some(false)));
        for (attempts, mode, wanted) in [
            (Some("0"), None, "AWS_MAX_ATTEMPTS=\"0\" is not a number of attempts from 1 to 100"),
            (Some("many"), None, "AWS_MAX_ATTEMPTS=\"many\""),
            (Some("101"), None, "AWS_MAX_ATTEMPTS=\"101\""),
            (None, Some("legacy"), "AWS_RETRY_MODE=\"legacy\" is not supported"),
        ] {
            let err = retry_env(attempts, mode).unwrap_err();
            assert!(err.contains(wanted) && err.contains("which wins"), "{err}");
        }
    }

    /// ddbsync's own retry loop (`retry::retrying`) wraps only calls sent with the SDK's retries
    /// off, so that attempts never multiply: every call it wraps is one of these, and each of them
    /// turns the SDK's retries off.
    #[test]
    fn calls_ddbsync_retries_have_the_sdks_retries_off() {
        let source = include_str!("dynamo.rs");
        for call in ["async fn scan(", "async fn query_index(", "async fn batch_get(", "async fn batch_write("] {
            let body = &source[source.find(call).unwrap()..];
            let body = &body[..body[1..].find("\n    async fn ").unwrap_or(body.len())];
            assert!(body.contains("config_override(no_retries())"), "{call} keeps the SDK's retries");
        }
        // The writer's own loop (`writer::write_with_retry`) sends only BatchWriteItem.
        let engine = [include_str!("../engine/scan.rs"), include_str!("../engine/verify.rs")];
        for text in engine {
            for (at, _) in text.match_indices("retrying(") {
                let call = &text[at..text.len().min(at + 200)];
                let ok = ["scan_page", "scan_limited", "dynamo.scan(", "query_index", "batch_get"]
                    .iter()
                    .any(|c| call.contains(c));
                assert!(ok, "ddbsync retries a call the SDK may retry too: {call}");
            }
        }
    }
}
