//! The plan of one batch size: the regions of a step's activations and error terms and every
//! dispatch of the step (forward, output error term, hidden error terms back to front, weight
//! updates), each product in the variant its device chose for its shape.

use super::backend::GpuBackend;
use super::buffers::{split, BlockMatrix};
use super::gemm::Product;
use super::kernels::{Dispatch, Part, Update};
use crate::error::{Error, Result};
use crate::model::Activation;
use crate::ops::optimizer::Rule;

/// Which part of a step [`GpuBackend::record_step`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StepPart {
    /// The whole step in one compute pass: the forward pass, the output error term from the
    /// batch's targets (by the fused output layer or its own kernel), the hidden error terms
    /// and the updates.
    Whole,
    /// The forward pass alone, whose output the host reads back
    /// (`Backend::delta_weights_from_output`). The fused output layer also writes an error term
    /// from whatever targets the plan holds: `Backward` never reads it.
    Forward,
    /// The rest of a step after a `Forward`, from an output error term the host uploaded into
    /// `error_terms[last]` in between (over the fused layer's): the hidden error terms and the
    /// updates. The targets are not read.
    Backward,
}

/// The buffers and recorded dispatches for one batch size.
pub(super) struct BatchPlan {
    pub(super) records: usize,
    pub(super) x: BlockMatrix,
    pub(super) target: BlockMatrix,
    pub(super) layer_outputs: Vec<BlockMatrix>,
    pub(super) error_terms: Vec<BlockMatrix>,
    pub(super) forward: Vec<Dispatch>,
    /// `None` where the output layer's forward product computes it (the fused path).
    pub(super) output_error_term: Option<Dispatch>,
    /// Back to front: the term of the last hidden layer first.
    pub(super) hidden_error_terms: Vec<Dispatch>,
    pub(super) apply_updates: Vec<Dispatch>,
    /// Built the first time deltas are asked for (`backprop step`, validation).
    pub(super) delta_updates: Option<Vec<Dispatch>>,
    pub(super) learnrate: f32,
}

impl GpuBackend {
    pub(super) fn build_plan(&self, records: usize, learnrate: f32) -> Result<BatchPlan> {
        // The weight update sums over the batch's records in one dispatch.
        let max_reduction = self.device.ctx.max_reduction;
        if records > max_reduction {
            return Err(Error::Gpu(format!(
                "a batch of {records} records is more than the {max_reduction} terms {} sums correctly in one dispatch: use a smaller --batch",
                self.device.ctx.info.name
            )));
        }
        // Split layers were cut so that `max_records` records' activations fit a binding; an
        // unsplit network takes any batch its regions fit (Region::new says when not).
        if records > self.options.max_records && self.layout.iter().any(|b| b.len() > 1) {
            return Err(Error::Gpu(format!(
                "a batch of {records} records exceeds the {} this backend's split layers were laid out for",
                self.options.max_records
            )));
        }
        let (ctx, guarded) = (&self.device.ctx, self.options.guard_regions);
        let kernels = &self.device.kernels;
        let n_layers = self.n_layers();
        let layout = &self.layout;
        let batch = |label: String, k: usize| {
            BlockMatrix::new(
                ctx,
                &label,
                split(records, records),
                layout[k].clone(),
                guarded,
            )
        };
        let x = batch("x".into(), 0)?;
        let target = batch("target".into(), n_layers)?;
        let layer_outputs = (0..n_layers)
            .map(|l| batch(format!("layer_out {l}"), l + 1))
            .collect::<Result<Vec<_>>>()?;
        let error_terms = (0..n_layers)
            .map(|l| batch(format!("error_term {l}"), l + 1))
            .collect::<Result<Vec<_>>>()?;
        let layer_input = |l: usize| if l == 0 { &x } else { &layer_outputs[l - 1] };

        let last = n_layers - 1;
        // The output layer's forward pass and error term are one product where the layer is one
        // block and the device chose the fused path for its shape.
        let output = self.spec.output;
        let fused = layout[last].len() == 1
            && output.is_elementwise()
            && self
                .device
                .fuse_output_layer((records, layout[last][0].len(), self.n_outputs()))?;

        // Forward: each block of a layer's units sums over the blocks of its inputs.
        let mut forward = Vec::new();
        for l in 0..n_layers {
            let input = layer_input(l);
            for (j, units) in layout[l + 1].iter().enumerate() {
                for (i, inputs) in layout[l].iter().enumerate() {
                    let shape = (records, inputs.len(), units.len());
                    let dispatches = if l == last && fused {
                        kernels.output_layer(
                            ctx,
                            &self.device.choose(Product::OutputLayer, shape)?,
                            input.block(0, i),
                            self.weights[l].block(i, j),
                            self.bias_block(l, j),
                            layer_outputs[l].block(0, j),
                            target.block(0, 0),
                            error_terms[l].block(0, 0),
                            &self.status,
                            shape,
                            (output, self.spec.loss),
                        )?
                    } else {
                        kernels.layer_forward(
                            ctx,
                            &self.device.choose(Product::LayerForward, shape)?,
                            input.block(0, i),
                            self.weights[l].block(i, j),
                            self.bias_block(l, j),
                            layer_outputs[l].block(0, j),
                            shape,
                            self.activation(l),
                            Part::of(i, layout[l].len()),
                        )?
                    };
                    forward.extend(dispatches);
                }
            }
        }
        // A softmax output: the forward product left the raw sums; each record's row now.
        if output == Activation::Softmax {
            forward.push(kernels.softmax_rows(
                ctx,
                layer_outputs[last].block(0, 0),
                (records, self.n_outputs()),
            )?);
        }
        let output_error_term = if fused {
            None
        } else {
            Some(kernels.output_error_term(
                ctx,
                target.block(0, 0),
                layer_outputs[last].block(0, 0),
                error_terms[last].block(0, 0),
                &self.status,
                (records, self.n_outputs()),
                (output, self.spec.loss),
            )?)
        };
        // Back to front: each block of a hidden layer sums over the blocks of the next layer.
        let mut hidden_error_terms = Vec::new();
        for l in (0..last).rev() {
            let next_blocks = &layout[l + 2];
            for (i, hidden) in layout[l + 1].iter().enumerate() {
                for (j, next) in next_blocks.iter().enumerate() {
                    let shape = (records, hidden.len(), next.len());
                    hidden_error_terms.extend(kernels.hidden_error_term(
                        ctx,
                        &self.device.choose(
                            Product::HiddenErrorTerm,
                            (records, hidden.len(), next.len()),
                        )?,
                        error_terms[l + 1].block(0, j),
                        self.weights[l + 1].block(i, j),
                        layer_outputs[l].block(0, i),
                        error_terms[l].block(0, i),
                        shape,
                        self.spec.hidden,
                        Part::of(j, next_blocks.len()),
                    )?);
                }
            }
        }
        let mut plan = BatchPlan {
            records,
            x,
            target,
            layer_outputs,
            error_terms,
            forward,
            output_error_term,
            hidden_error_terms,
            apply_updates: Vec::new(),
            delta_updates: None,
            learnrate,
        };
        plan.apply_updates = self.updates(&plan, false)?;
        Ok(plan)
    }

    /// The weight updates of a plan, block by block: in place, or into `deltas`.
    pub(super) fn updates(&self, plan: &BatchPlan, into_deltas: bool) -> Result<Vec<Dispatch>> {
        let deltas = if into_deltas {
            Some(
                self.deltas
                    .as_deref()
                    .ok_or_else(|| Error::Gpu("no delta buffers".into()))?,
            )
        } else {
            None
        };
        let learnrate = plan.learnrate;
        // How layer `l`'s block `(i, j)` (`i` None: its biases) steps.
        let update = |l: usize, i: Option<usize>, j: usize| -> Update {
            if into_deltas {
                Update::Deltas { learnrate }
            } else {
                self.in_place_update(l, i, j, learnrate)
            }
        };
        let mut updates = Vec::new();
        for l in 0..self.n_layers() {
            let input = if l == 0 {
                &plan.x
            } else {
                &plan.layer_outputs[l - 1]
            };
            for (i, inputs) in self.layout[l].iter().enumerate() {
                for (j, units) in self.layout[l + 1].iter().enumerate() {
                    let target = deltas.map_or(&self.unused_deltas, |d| d[l].block(i, j));
                    let shape = (plan.records, inputs.len(), units.len());
                    updates.extend(self.device.kernels.weight_update(
                        &self.device.ctx,
                        &self.device.choose(Product::WeightUpdate, shape)?,
                        input.block(0, i),
                        plan.error_terms[l].block(0, j),
                        self.weights[l].block(i, j),
                        target,
                        shape,
                        update(l, Some(i), j),
                    )?);
                }
            }
            // The layer's biases: a bias is a weight whose input is always 1.
            let Some(biases) = &self.biases else {
                continue;
            };
            for (j, units) in self.layout[l + 1].iter().enumerate() {
                let target = match (&self.bias_deltas, into_deltas) {
                    (Some(d), true) => d[l].block(0, j),
                    _ => &self.unused_deltas,
                };
                updates.push(self.device.kernels.bias_update(
                    &self.device.ctx,
                    plan.error_terms[l].block(0, j),
                    biases[l].block(0, j),
                    target,
                    (plan.records, units.len()),
                    update(l, None, j),
                )?);
            }
        }
        Ok(updates)
    }

    /// How block `(i, j)` of layer `l`'s weights (`i` None: of its biases) steps in place: the
    /// seeds' step at `learnrate`, or the optimizer's rule with the block's moments.
    fn in_place_update(&self, l: usize, i: Option<usize>, j: usize, learnrate: f32) -> Update<'_> {
        let rule = self.optimizer.rule();
        if rule == Rule::Plain {
            return Update::Apply { learnrate };
        }
        let moment = |k: usize| {
            self.moments.get(k).and_then(|m| match i {
                Some(i) => Some(m.weights[l].block(i, j)),
                None => m.biases.as_ref().map(|b| b[l].block(0, j)),
            })
        };
        Update::Optimizer {
            rule,
            moments: [moment(0), moment(1)],
            step_values: &self.step_values,
            of_weights: i.is_some(),
        }
    }

    /// The step of every weight and bias from a gradient computed elsewhere
    /// (`Backend::apply_gradient`), block by block. The gradient is uploaded negated into the
    /// delta regions: `−gradient` is the deltas at learning rate 1, which is what the error term
    /// of a batch of one record is to `bias_update` (`Σ_records error_term`). Over one record,
    /// with a block of weights flattened as its "units", `bias_update` is then an element-wise
    /// step of exactly the fused epilogues' kind: `w += learnrate · (−g)` for the seeds' step,
    /// `optimizer_update(i, w, g)` for an optimizer (its scale −1 / records = −1 turns `−g` back
    /// into `g`, exactly).
    pub(super) fn build_gradient_updates(&self, learnrate: f32) -> Result<Vec<Dispatch>> {
        let (ctx, kernels) = (&self.device.ctx, &self.device.kernels);
        let deltas = self
            .deltas
            .as_deref()
            .ok_or_else(|| Error::Gpu("no delta buffers".into()))?;
        let mut updates = Vec::new();
        for l in 0..self.n_layers() {
            for (i, inputs) in self.layout[l].iter().enumerate() {
                for (j, units) in self.layout[l + 1].iter().enumerate() {
                    updates.push(kernels.bias_update(
                        ctx,
                        deltas[l].block(i, j),
                        self.weights[l].block(i, j),
                        &self.unused_deltas,
                        (1, inputs.len() * units.len()),
                        self.in_place_update(l, Some(i), j, learnrate),
                    )?);
                }
            }
            let (Some(biases), Some(bias_deltas)) = (&self.biases, &self.bias_deltas) else {
                continue;
            };
            for (j, units) in self.layout[l + 1].iter().enumerate() {
                updates.push(kernels.bias_update(
                    ctx,
                    bias_deltas[l].block(0, j),
                    biases[l].block(0, j),
                    &self.unused_deltas,
                    (1, units.len()),
                    self.in_place_update(l, None, j, learnrate),
                )?);
            }
        }
        Ok(updates)
    }

    /// Makes sure a plan for `records` exists and steps with `learnrate`.
    pub(super) fn plan_for(&mut self, records: usize, learnrate: f32) -> Result<&mut BatchPlan> {
        if !self.plans.contains_key(&records) {
            let plan = self.build_plan(records, learnrate)?;
            self.plans.insert(records, plan);
        }
        let ctx = &self.device.ctx;
        let optimizer_rule = self.optimizer.rule();
        let plan = self
            .plans
            .get_mut(&records)
            .ok_or_else(|| Error::Gpu("no batch plan".into()))?;
        if plan.learnrate != learnrate {
            let scale = learnrate / records as f32;
            // An optimizer's updates read their learning rate from the step values instead.
            let in_place = match optimizer_rule {
                Rule::Plain => plan.apply_updates.as_mut_slice(),
                _ => &mut [],
            };
            for d in in_place
                .iter_mut()
                .chain(plan.delta_updates.iter_mut().flatten())
            {
                d.set_scale(ctx, scale);
            }
            plan.learnrate = learnrate;
        }
        Ok(plan)
    }

    /// Allocates the delta regions (laid out like the weights and biases) on first use.
    pub(super) fn ensure_delta_regions(&mut self) -> Result<()> {
        if self.deltas.is_none() {
            let names = crate::model::delta_names(self.n_layers());
            let deltas = (0..self.n_layers())
                .map(|l| {
                    BlockMatrix::new(
                        &self.device.ctx,
                        &names[l],
                        self.layout[l].clone(),
                        self.layout[l + 1].clone(),
                        self.options.guard_regions,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            self.deltas = Some(deltas);
        }
        if self.biases.is_some() && self.bias_deltas.is_none() {
            let names = crate::model::bias_delta_names(self.n_layers());
            let bias_deltas = (0..self.n_layers())
                .map(|l| self.bias_matrix(&names[l], l))
                .collect::<Result<Vec<_>>>()?;
            self.bias_deltas = Some(bias_deltas);
        }
        Ok(())
    }

    pub(super) fn ensure_delta_updates(&mut self, records: usize) -> Result<()> {
        self.ensure_delta_regions()?;
        let plan = self.plan(records)?;
        if plan.delta_updates.is_none() {
            let updates = self.updates(plan, true)?;
            if let Some(plan) = self.plans.get_mut(&records) {
                plan.delta_updates = Some(updates);
            }
        }
        Ok(())
    }

    pub(super) fn plan(&self, records: usize) -> Result<&BatchPlan> {
        self.plans
            .get(&records)
            .ok_or_else(|| Error::Gpu(format!("no plan for batches of {records}")))
    }

    /// Records `part` of a step of the plan for `records`: the forward pass, the output error
    /// term, the hidden error terms back to front, and the updates (in place when `apply`, else
    /// into the delta regions), all in one compute pass. [`StepPart::Whole`] records them all;
    /// [`StepPart::Forward`] and [`StepPart::Backward`] the same dispatches with the output error
    /// term left to the host between them.
    pub(super) fn record_step(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        records: usize,
        apply: bool,
        part: StepPart,
    ) -> Result<()> {
        let plan = self.plan(records)?;
        let updates: &[Dispatch] = match part {
            StepPart::Forward => &[],
            _ if apply => &plan.apply_updates,
            _ => plan
                .delta_updates
                .as_ref()
                .ok_or_else(|| Error::Gpu("delta updates not built".into()))?,
        };
        let label = match part {
            StepPart::Whole => "training step",
            StepPart::Forward => "forward pass",
            StepPart::Backward => "backward pass",
        };
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        if part != StepPart::Backward {
            plan.forward.iter().for_each(|d| d.record(&mut pass));
        }
        match part {
            StepPart::Whole => plan
                .output_error_term
                .iter()
                .for_each(|d| d.record(&mut pass)),
            StepPart::Forward => return Ok(()),
            StepPart::Backward => {}
        }
        plan.hidden_error_terms
            .iter()
            .for_each(|d| d.record(&mut pass));
        updates.iter().for_each(|d| d.record(&mut pass));
        Ok(())
    }
}
