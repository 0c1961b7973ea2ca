//! What the user said about the columns: roles, the empty-cell policy, and when a target is
//! a set of classes.

use serde::{Deserialize, Serialize};

use crate::data::frame::{ReadPlan, Role};
use crate::guard::numeric::Precision;

/// The level an empty categorical cell becomes.
pub const MISSING: &str = "(missing)";

/// What the user said about the columns.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub targets: Vec<String>,
    pub categorical: Vec<String>,
    pub drop: Vec<String>,
    pub date: Option<String>,
    /// Standardise the targets (regression, identity output); sigmoid targets stay in [0, 1].
    pub standardize_targets: bool,
    /// A categorical column with more distinct values than this is refused (one-hot encoding
    /// it would make one feature per value: a column of IDs is a matrix of records squared).
    pub max_categories: usize,
    /// When a target column is a set of classes (see [`Classify`]).
    pub classify: Classify,
    /// The output the user asked for (`--output`), which decides how two classes are encoded:
    /// one sigmoid output (the default) or a two-way softmax.
    pub output: Option<crate::model::Activation>,
    /// What empty cells become.
    pub missing: Missing,
    /// The precision the inputs are encoded in: the one the model trains in (no second copy).
    pub precision: Precision,
}

/// The default of [`PipelineOptions::max_categories`] (`--max-categories`).
pub const DEFAULT_MAX_CATEGORIES: usize = 1000;

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            targets: Vec::new(),
            categorical: Vec::new(),
            drop: Vec::new(),
            date: None,
            standardize_targets: false,
            max_categories: DEFAULT_MAX_CATEGORIES,
            classify: Classify::Auto,
            output: None,
            missing: Missing::Error,
            precision: Precision::F64,
        }
    }
}

/// What an empty feature cell becomes (`--missing`). A categorical column holding the date's
/// weekday is refilled from the date under every policy: that is the cell's value, not a guess.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// An empty cell is an error naming its line and column (and an empty target too).
    #[default]
    Error,
    /// Records with an empty feature or target cell are left out (and counted).
    Drop,
    /// Numbers: the training mean; categories: their own level, `(missing)`.
    Mean,
    /// Numbers: the training median; categories: their own level, `(missing)`.
    Median,
    /// The training split's most frequent value, numbers and categories alike.
    MostFrequent,
}

impl Missing {
    /// The policy of models saved before `--missing` existed.
    pub(crate) fn legacy() -> Self {
        Missing::Mean
    }

    pub fn name(self) -> &'static str {
        match self {
            Missing::Error => "error",
            Missing::Drop => "drop",
            Missing::Mean => "mean",
            Missing::Median => "median",
            Missing::MostFrequent => "most-frequent",
        }
    }
}

/// The hint of an empty cell's error.
pub(crate) const MISSING_HINT: &str =
    "choose what empty cells become with --missing drop|mean|median|most-frequent";

/// When a single target column is a set of classes, as scikit-learn's `type_of_target` sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Classify {
    /// No loss named: a column of labels (text) is a set of classes; numbers are regression,
    /// even a few integer levels.
    #[default]
    Auto,
    /// `--loss mse`: every target is numbers.
    Never,
    /// `--loss cross-entropy`: a column of text or integers is a set of classes; other
    /// numbers are probabilities in [0, 1].
    Always,
}

impl PipelineOptions {
    /// How a reader stores each column: targets as numbers and text, categories and the date
    /// as text, dropped columns not at all, the rest inferred.
    pub fn read_plan(&self) -> ReadPlan {
        let mut plan = ReadPlan::infer_all();
        let mut name = |columns: &[String], role: Role| {
            for c in columns {
                plan.roles.insert(c.clone(), role);
            }
        };
        name(&self.drop, Role::Skip);
        name(&self.categorical, Role::Text);
        name(self.date.as_slice(), Role::Text);
        name(&self.targets, Role::Target);
        plan.levels_kept = self.max_categories.saturating_add(1);
        plan
    }
}
