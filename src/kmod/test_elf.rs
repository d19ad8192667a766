//! Test support: minimal ELF64 relocatable objects written byte by byte, so tests do not
//! depend on a compiler. Layout: ELF header, section contents, `.shstrtab`, section headers.

/// `.modinfo` content from `key=value` entries.
pub fn modinfo_bytes(entries: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(e.as_bytes());
        out.push(0);
    }
    out
}

/// A relocatable x86-64 ELF whose only section is `.modinfo` with `modinfo`.
pub fn synthetic_module(modinfo: &[u8]) -> Vec<u8> {
    elf_with_sections(&[(".modinfo", modinfo)])
}

/// A relocatable x86-64 ELF with the given (name, content) PROGBITS sections.
pub fn elf_with_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut name_offsets = Vec::new();
    for (name, _) in sections {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    let shstrtab_name = shstrtab.len() as u32;
    shstrtab.extend_from_slice(b".shstrtab\0");

    let mut body = vec![0u8; 64];
    let mut placed = Vec::new();
    for (_, data) in sections {
        placed.push((body.len() as u64, data.len() as u64));
        body.extend_from_slice(data);
    }
    let shstrtab_at = body.len() as u64;
    body.extend_from_slice(&shstrtab);
    while body.len() % 8 != 0 {
        body.push(0);
    }
    let shoff = body.len() as u64;
    let shnum = sections.len() as u16 + 2;

    // ELF header.
    body[0..4].copy_from_slice(b"\x7fELF");
    body[4] = 2; // ELFCLASS64
    body[5] = 1; // little endian
    body[6] = 1; // EV_CURRENT
    body[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    body[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    body[20..24].copy_from_slice(&1u32.to_le_bytes());
    body[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    body[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    body[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    body[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
    body[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes()); // e_shstrndx

    body.extend_from_slice(&[0u8; 64]); // SHN_UNDEF
    for (i, (offset, size)) in placed.iter().enumerate() {
        body.extend_from_slice(&section_header(name_offsets[i], 1, 2, *offset, *size));
    }
    body.extend_from_slice(&section_header(
        shstrtab_name,
        3,
        0,
        shstrtab_at,
        shstrtab.len() as u64,
    ));
    body
}

fn section_header(name: u32, sh_type: u32, flags: u64, offset: u64, size: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[0..4].copy_from_slice(&name.to_le_bytes());
    h[4..8].copy_from_slice(&sh_type.to_le_bytes());
    h[8..16].copy_from_slice(&flags.to_le_bytes());
    h[24..32].copy_from_slice(&offset.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    h[48..56].copy_from_slice(&1u64.to_le_bytes()); // sh_addralign
    h
}

/// A module tree on disk made of synthetic modules: `(relative path, modinfo entries)`.
pub fn write_tree(root: &std::path::Path, modules: &[(&str, &[&str])]) {
    for (rel, entries) in modules {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, synthetic_module(&modinfo_bytes(entries))).unwrap();
    }
}
