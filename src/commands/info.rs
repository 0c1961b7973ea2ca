//! `backprop info`: the adapters wgpu reaches and the limits that matter to the kernels.

use anyhow::Result;

use super::outln;

use backprop::gpu::context::list_adapters;

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Print the adapters as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let adapters = list_adapters();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&adapters)?)?;
        return Ok(());
    }
    if adapters.is_empty() {
        outln!("no GPU adapter found: wgpu reaches no Vulkan, Metal or DX12 driver here.")?;
        outln!("`--backend auto` computes on the CPU backend.")?;
        return Ok(());
    }
    const MIB: f64 = 1024.0 * 1024.0;
    for (i, a) in adapters.iter().enumerate() {
        outln!("[{i}] {}", a.name)?;
        outln!(
            "    type                {}{}",
            a.device_type,
            if a.software {
                " (software: used only with --adapter)"
            } else {
                ""
            }
        )?;
        outln!("    backend             {}", a.backend)?;
        outln!("    driver              {} {}", a.driver, a.driver_info)?;
        outln!(
            "    max storage binding {:.0} MiB",
            a.max_storage_buffer_binding_size as f64 / MIB
        )?;
        outln!(
            "    max buffer          {:.0} MiB",
            a.max_buffer_size as f64 / MIB
        )?;
        outln!(
            "    workgroup storage   {} bytes",
            a.max_compute_workgroup_storage_size
        )?;
        outln!(
            "    invocations/group   {}",
            a.max_compute_invocations_per_workgroup
        )?;
        outln!(
            "    groups/dimension    {}",
            a.max_compute_workgroups_per_dimension
        )?;
        outln!(
            "    features            timestamp_query={} subgroups={} shader_f16={}",
            a.timestamp_query,
            a.subgroups,
            a.shader_f16
        )?;
    }
    Ok(())
}
