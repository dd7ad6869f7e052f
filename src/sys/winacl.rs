//! Windows access lists: what `chmod 600` / `chmod 700` are on Unix. OpenSSH for Windows refuses
//! a private key that anyone but its owner, SYSTEM and the Administrators group may read, so
//! keyrotate gives every private file (and its own directories) an access list naming the owner
//! alone, not inherited from the parent, and `check` reports keys whose list lets others read.
//!
//! The only unsafe code of the library: calls into the Win32 security API through `windows-sys`
//! (Microsoft's own bindings). Every pointer handed out by Windows is freed with `LocalFree` by
//! a guard, and nothing here outlives the call that made it.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_SUCCESS, GENERIC_ALL, GENERIC_READ, HANDLE, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, EXPLICIT_ACCESS_W, GetNamedSecurityInfoW, NO_MULTIPLE_TRUSTEE,
    SE_FILE_OBJECT, SET_ACCESS, SetEntriesInAclW, TRUSTEE_IS_SID, TRUSTEE_IS_USER, TRUSTEE_W,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACL, ACL_SIZE_INFORMATION, AclSizeInformation, DACL_SECURITY_INFORMATION,
    EqualSid, GetAce, GetAclInformation, GetTokenInformation, InitializeSecurityDescriptor,
    IsWellKnownSid, LookupAccountSidW, NO_INHERITANCE, OWNER_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, SE_DACL_PROTECTED,
    SECURITY_DESCRIPTOR, SID_NAME_USE, SUB_CONTAINERS_AND_OBJECTS_INHERIT, SetFileSecurityW,
    SetSecurityDescriptorControl, SetSecurityDescriptorDacl, TOKEN_QUERY, TOKEN_USER, TokenUser,
    WinBuiltinAdministratorsSid, WinLocalSystemSid,
};
use windows_sys::Win32::Storage::FileSystem::{FILE_ALL_ACCESS, FILE_READ_DATA};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// `ACCESS_ALLOWED_ACE_TYPE` (winnt.h).
const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;
/// `INHERIT_ONLY_ACE` (winnt.h), as the `AceFlags` byte.
const INHERIT_ONLY_ACE: u8 = 0x08;
/// `SECURITY_DESCRIPTOR_REVISION` (winnt.h).
const SECURITY_DESCRIPTOR_REVISION: u32 = 1;

/// Frees memory Windows allocated with `LocalAlloc` when dropped.
struct LocalBox(*mut core::ffi::c_void);

impl Drop for LocalBox {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a Windows call documented to allocate with LocalAlloc.
            unsafe { LocalFree(self.0) };
        }
    }
}

fn wide(path: &Path) -> Vec<u16> {
    OsStr::new(path).encode_wide().chain(Some(0)).collect()
}

fn win32_error(code: u32) -> io::Error {
    io::Error::from_raw_os_error(code as i32)
}

/// The SID of the user this process runs as (bytes, copied out of the token).
fn current_user_sid() -> io::Result<Vec<u8>> {
    let mut token: HANDLE = ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle; `token` is a valid out pointer.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut len = 0u32;
    // SAFETY: asking for the size only (null buffer, zero length).
    unsafe { GetTokenInformation(token, TokenUser, ptr::null_mut(), 0, &mut len) };
    // u64 storage keeps the TOKEN_USER structure aligned.
    let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
    // SAFETY: `buf` holds at least `len` bytes.
    let ok =
        unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) };
    let err = io::Error::last_os_error();
    // SAFETY: `token` is the handle OpenProcessToken gave us.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(err);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points inside it.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    Ok(sid_bytes(sid))
}

/// Copy a SID out of memory owned by someone else.
fn sid_bytes(sid: PSID) -> Vec<u8> {
    use windows_sys::Win32::Security::GetLengthSid;
    // SAFETY: `sid` is a valid SID (from the token or an ACE); GetLengthSid reads its header.
    let len = unsafe { GetLengthSid(sid) } as usize;
    // SAFETY: the SID occupies `len` readable bytes.
    unsafe { std::slice::from_raw_parts(sid.cast::<u8>(), len) }.to_vec()
}

/// Give `path` an access list that lets its owner (the current user) do anything and nobody
/// else do anything, and stop it inheriting entries from its parent directory. For a directory,
/// the entry is inherited by what is created inside it.
pub fn restrict_to_owner(path: &Path, is_dir: bool) -> io::Result<()> {
    let mut sid = current_user_sid()?;
    let access = EXPLICIT_ACCESS_W {
        grfAccessPermissions: if is_dir { GENERIC_ALL } else { FILE_ALL_ACCESS },
        grfAccessMode: SET_ACCESS,
        grfInheritance: if is_dir {
            SUB_CONTAINERS_AND_OBJECTS_INHERIT
        } else {
            NO_INHERITANCE
        },
        Trustee: TRUSTEE_W {
            pMultipleTrustee: ptr::null_mut(),
            MultipleTrusteeOperation: NO_MULTIPLE_TRUSTEE,
            TrusteeForm: TRUSTEE_IS_SID,
            TrusteeType: TRUSTEE_IS_USER,
            ptstrName: sid.as_mut_ptr().cast(),
        },
    };
    let mut acl: *mut ACL = ptr::null_mut();
    // SAFETY: one valid entry, no old list; `acl` receives a LocalAlloc'd list.
    let status = unsafe { SetEntriesInAclW(1, &access, ptr::null(), &mut acl) };
    let _acl_guard = LocalBox(acl.cast());
    if status != ERROR_SUCCESS {
        return Err(win32_error(status));
    }
    // A descriptor holding just that list, marked protected (nothing inherited from the parent
    // is merged in), written with SetFileSecurityW: SetNamedSecurityInfoW would add the
    // parent's inheritable entries back on some implementations (Wine does).
    let mut descriptor = SECURITY_DESCRIPTOR::default();
    let sd: PSECURITY_DESCRIPTOR = (&mut descriptor as *mut SECURITY_DESCRIPTOR).cast();
    let name = wide(path);
    // SAFETY: `sd` points to a SECURITY_DESCRIPTOR that outlives these calls; `acl` stays
    // alive (its guard) until they return; `name` is NUL-terminated.
    let ok = unsafe {
        InitializeSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION) != 0
            && SetSecurityDescriptorDacl(sd, 1, acl, 0) != 0
            && SetSecurityDescriptorControl(sd, SE_DACL_PROTECTED, SE_DACL_PROTECTED) != 0
            && SetFileSecurityW(
                name.as_ptr(),
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                sd,
            ) != 0
    };
    match ok {
        true => Ok(()),
        false => Err(io::Error::last_os_error()),
    }
}

/// Who, besides the file's owner, the current user, SYSTEM and the Administrators group, may
/// read `path` according to its access list: account names (`DOMAIN\name`, or the SID when it
/// has no name). An access list that is missing altogether lets everyone in.
pub fn other_readers(path: &Path) -> io::Result<Vec<String>> {
    let me = current_user_sid()?;
    let name = wide(path);
    let mut owner: PSID = ptr::null_mut();
    let mut dacl: *mut ACL = ptr::null_mut();
    let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: valid NUL-terminated name and out pointers; the descriptor is LocalAlloc'd and
    // `owner` and `dacl` point inside it.
    let status = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
            &mut owner,
            ptr::null_mut(),
            &mut dacl,
            ptr::null_mut(),
            &mut descriptor,
        )
    };
    let _descriptor_guard = LocalBox(descriptor);
    if status != ERROR_SUCCESS {
        return Err(win32_error(status));
    }
    if dacl.is_null() {
        return Ok(vec!["Everyone (the file has no access list)".to_string()]);
    }
    let mut info = ACL_SIZE_INFORMATION::default();
    // SAFETY: `dacl` is valid while the descriptor lives; `info` is the right size.
    let ok = unsafe {
        GetAclInformation(
            dacl,
            (&mut info as *mut ACL_SIZE_INFORMATION).cast(),
            size_of::<ACL_SIZE_INFORMATION>() as u32,
            AclSizeInformation,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut readers = Vec::new();
    for index in 0..info.AceCount {
        let mut ace: *mut core::ffi::c_void = ptr::null_mut();
        // SAFETY: `index` is below the entry count of a valid list.
        if unsafe { GetAce(dacl, index, &mut ace) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: every entry starts with an ACE_HEADER.
        let header = unsafe { (*ace.cast::<ACCESS_ALLOWED_ACE>()).Header };
        // Only entries that allow, and apply to the file itself (not inherit-only ones).
        if header.AceType != ACCESS_ALLOWED_ACE_TYPE || header.AceFlags & INHERIT_ONLY_ACE != 0 {
            continue;
        }
        // SAFETY: an access-allowed entry is an ACCESS_ALLOWED_ACE whose SID starts at SidStart.
        let (mask, sid) = unsafe {
            let allowed = ace.cast::<ACCESS_ALLOWED_ACE>();
            (
                (*allowed).Mask,
                ptr::addr_of_mut!((*allowed).SidStart).cast::<core::ffi::c_void>(),
            )
        };
        if mask & (FILE_READ_DATA | GENERIC_READ | GENERIC_ALL) == 0 {
            continue;
        }
        // SAFETY: both are valid SIDs for the duration of these calls.
        let trusted = unsafe {
            (!owner.is_null() && EqualSid(sid, owner) != 0)
                || EqualSid(sid, me.as_ptr() as PSID) != 0
                || IsWellKnownSid(sid, WinLocalSystemSid) != 0
                || IsWellKnownSid(sid, WinBuiltinAdministratorsSid) != 0
        };
        if !trusted {
            let who = account_name(sid);
            if !readers.contains(&who) {
                readers.push(who);
            }
        }
    }
    Ok(readers)
}

/// `DOMAIN\name` of a SID, or its `S-1-...` string form when it has no name here.
fn account_name(sid: PSID) -> String {
    let mut name = [0u16; 256];
    let mut domain = [0u16; 256];
    let (mut name_len, mut domain_len) = (name.len() as u32, domain.len() as u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: buffers and their lengths match; `sid` is valid.
    let ok = unsafe {
        LookupAccountSidW(
            ptr::null(),
            sid,
            name.as_mut_ptr(),
            &mut name_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok != 0 {
        let name = String::from_utf16_lossy(&name[..name_len as usize]);
        let domain = String::from_utf16_lossy(&domain[..domain_len as usize]);
        return match domain.is_empty() {
            true => name,
            false => format!("{domain}\\{name}"),
        };
    }
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `text` receives a LocalAlloc'd NUL-terminated string.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 || text.is_null() {
        return "an unknown account".to_string();
    }
    let _text_guard = LocalBox(text.cast());
    // SAFETY: `text` is NUL-terminated.
    let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
    // SAFETY: `len` u16s before the NUL are readable.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) })
}
